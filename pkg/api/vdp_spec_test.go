package api_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/port"
)

// vlan_from_bridge is the explicit marker of a VLAN the bridge assigns
// over VDP: a plain "vlan":0 keeps its old meanings (no access VLAN next
// to a trunk; refused alone, now with a hint).
func TestApplyVLANFromBridge(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec api.PortSpec
		code string
		msg  string
	}{
		{"marker alone", api.PortSpec{Name: "vnet1", VLANFromBridge: ptr(true)}, "", ""},
		{"marker and vlan 0", api.PortSpec{Name: "vnet1", VLAN: ptr(0), VLANFromBridge: ptr(true), MACs: &[]string{"52:54:00:12:34:56"}}, "", ""},
		{"marker and vlan 0 and trunk empty", api.PortSpec{Name: "vnet1", VLAN: ptr(0), Trunk: ptr(""), VLANFromBridge: ptr(true)}, "", ""},
		{"marker and a VLAN", api.PortSpec{Name: "vnet1", VLAN: ptr(5), VLANFromBridge: ptr(true)}, api.CodeInvalidVLAN, "port vnet1: vlan_from_bridge asks the bridge for the VLAN; drop vlan 5"},
		{"marker and a trunk", api.PortSpec{Name: "vnet1", Trunk: ptr("10"), VLANFromBridge: ptr(true)}, api.CodeInvalidVLAN, "not to a trunk"},
		{"marker false alone", api.PortSpec{Name: "vnet1", VLANFromBridge: ptr(false)}, api.CodeInvalidVLAN, "needs a VLAN"},
		{"vlan 0 alone: old error, with a hint", api.PortSpec{Name: "vnet1", VLAN: ptr(0)}, api.CodeInvalidVLAN, "invalid VLAN 0: must be 1-4094 (vlan_from_bridge asks the bridge to assign one over VDP)"},
		{"group", api.PortSpec{Name: "vnet1", VLAN: ptr(10), VSIGroup: ptr(int64(7))}, "", ""},
		{"group too big", api.PortSpec{Name: "vnet1", VLAN: ptr(10), VSIGroup: ptr(int64(1) << 32)}, api.CodeInvalidVSI, "invalid VSI group 4294967296: must be 1-4294967295, or 0 for none"},
		{"group negative", api.PortSpec{Name: "vnet1", VLAN: ptr(10), VSIGroup: ptr(int64(-1))}, api.CodeInvalidVSI, "invalid VSI group -1"},
		{"group on a trunk VDP cannot carry", api.PortSpec{Name: "vnet1", Trunk: ptr("1-82"), VSIGroup: ptr(int64(7))}, api.CodeInvalidVSI,
			"port vnet1: VDP would register 82 filter entries per VSI (82 VIDs), more than the 81 of format group+VID one VSI TLV holds"},
		{"plain trunk VDP cannot carry: still a port", api.PortSpec{Name: "vnet1", Trunk: ptr("1-4094"), MACs: &[]string{"52:54:00:12:34:56"}}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.spec.Apply(port.Config{})
			if tc.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				if tc.spec.VLANFromBridge != nil && *tc.spec.VLANFromBridge && (!c.BridgeVLAN || c.VLAN != 0 || !c.Waiting()) {
					t.Errorf("config %+v: want a waiting port with a VLAN from the bridge", c)
				}
				return
			}
			if err == nil || api.CodeOf(err) != tc.code || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Apply: %v (code %s), want %s %q", err, api.CodeOf(err), tc.code, tc.msg)
			}
		})
	}
}

// A PATCH moves a port to and from a VLAN the bridge assigns: the marker
// clears the VLAN and the trunk, a VLAN or a trunk clears the marker, and
// other fields leave it.
func TestApplySwitchesToBridgeVLAN(t *testing.T) {
	access := port.Config{Name: "vnet1", VLAN: 100, MACs: nil}
	trunkPort, err := api.PortSpec{Name: "vnet2", Trunk: ptr("10,20"), NativeVLAN: ptr(10)}.Apply(port.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, from := range []port.Config{access, trunkPort} {
		c, err := api.PortSpec{VLANFromBridge: ptr(true)}.Apply(from)
		if err != nil || !c.BridgeVLAN || c.VLAN != 0 || c.Trunk.Len() != 0 || c.NativeVLAN != 0 {
			t.Fatalf("%s to a VLAN from the bridge: %+v, %v", from.Name, c, err)
		}
		if k, err := (api.PortSpec{PCP: ptr(3), VSIGroup: ptr(int64(9))}).Apply(c); err != nil || !k.BridgeVLAN || k.PCP != 3 || k.VSIGroup != 9 {
			t.Errorf("PCP and group: %+v, %v", k, err)
		}
		if k, err := (api.PortSpec{VLAN: ptr(0)}).Apply(c); err != nil || !k.BridgeVLAN {
			t.Errorf("vlan 0 on a port whose VLAN the bridge assigns: %+v, %v", k, err)
		}
		if k, err := (api.PortSpec{VLAN: ptr(300)}).Apply(c); err != nil || k.BridgeVLAN || k.VLAN != 300 {
			t.Errorf("back to VLAN 300: %+v, %v", k, err)
		}
		if k, err := (api.PortSpec{Trunk: ptr("7")}).Apply(c); err != nil || k.BridgeVLAN || !k.IsTrunk() {
			t.Errorf("to a trunk: %+v, %v", k, err)
		}
		if _, err := (api.PortSpec{VLANFromBridge: ptr(false)}).Apply(c); err == nil || api.CodeOf(err) != api.CodeInvalidVLAN {
			t.Errorf("marker off, nothing instead: %v", err)
		}
		if k, err := (api.PortSpec{VLANFromBridge: ptr(false), VLAN: ptr(5)}).Apply(c); err != nil || k.BridgeVLAN || k.VLAN != 5 {
			t.Errorf("marker off with VLAN 5: %+v, %v", k, err)
		}
	}
}

// The port object shows the configured VLAN (0), the marker and the VID
// the bridge assigned, when the datapath's configuration has one; ports
// without them show none of the new keys.
func TestNewPortBridgeVLAN(t *testing.T) {
	p := api.NewPort(port.Config{Name: "vnet1", BridgeVLAN: true, VLAN: 200, VSIGroup: 3}, "up", api.PortCounters{})
	b, _ := json.Marshal(p)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["vlan"] != 0.0 || m["vlan_from_bridge"] != true || m["assigned_vlan"] != 200.0 || m["vsi_group"] != 3.0 {
		t.Errorf("port JSON %s", b)
	}
	p = api.NewPort(port.Config{Name: "vnet1", BridgeVLAN: true}, "waiting", api.PortCounters{})
	if b, _ := json.Marshal(p); strings.Contains(string(b), "assigned_vlan") || !strings.Contains(string(b), `"vlan_from_bridge":true`) {
		t.Errorf("waiting port JSON %s", b)
	}
	b, _ = json.Marshal(api.NewPort(port.Config{Name: "vnet1", VLAN: 100}, "up", api.PortCounters{}))
	for _, k := range []string{"vlan_from_bridge", "assigned_vlan", "vsi_group", "problem", "vdp_error"} {
		if strings.Contains(string(b), k) {
			t.Errorf("a plain port's JSON has %q: %s", k, b)
		}
	}
}
