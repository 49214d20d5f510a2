package port_test

import (
	"encoding/json"
	"errors"
	"net"
	"reflect"
	"strings"
	"testing"

	"github.com/vswitch/vswitch/pkg/port"
	"github.com/vswitch/vswitch/pkg/vepa"
)

// A port whose VLAN the bridge assigns is an access port: valid with no
// VLAN yet (waiting, no VID belongs to it) and with the assigned one, and
// never a trunk nor with a native VLAN.
func TestBridgeVLAN(t *testing.T) {
	wait := port.Config{Name: "vnet1", BridgeVLAN: true}
	if err := wait.Validate(); err != nil {
		t.Fatalf("waiting port: %v", err)
	}
	if wait.IsTrunk() || !wait.Waiting() || wait.HasVID(0) || wait.HasVID(1) {
		t.Errorf("waiting port: trunk %v, waiting %v, has VID 0 %v", wait.IsTrunk(), wait.Waiting(), wait.HasVID(0))
	}
	got := port.Config{Name: "vnet1", BridgeVLAN: true, VLAN: 200}
	if err := got.Validate(); err != nil {
		t.Fatalf("assigned port: %v", err)
	}
	if got.IsTrunk() || got.Waiting() || !got.HasVID(200) || got.HasVID(0) {
		t.Errorf("assigned port: trunk %v, waiting %v, has 200 %v", got.IsTrunk(), got.Waiting(), got.HasVID(200))
	}
	for _, tc := range []struct {
		c     port.Config
		field port.Field
		msg   string
	}{
		{port.Config{Name: "vnet1", BridgeVLAN: true, Trunk: trunk(t, "10")}, port.FieldVLAN, "port vnet1: the bridge assigns a VLAN to an access port (--vlan 0), not to a trunk"},
		{port.Config{Name: "vnet1", BridgeVLAN: true, NativeVLAN: 5}, port.FieldNativeVLAN, "port vnet1: a native VLAN needs a trunk port"},
		{port.Config{Name: "vnet1", BridgeVLAN: true, VLAN: 4095}, port.FieldVLAN, "invalid VLAN 4095: must be 1-4094"},
	} {
		err := tc.c.Validate()
		var pe *port.Error
		if !errors.As(err, &pe) || pe.Field != tc.field || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%+v: %v, want %v %q", tc.c, err, tc.field, tc.msg)
		}
	}
}

// The record of a port whose VLAN the bridge assigns says so and keeps no
// VID: a restarted daemon asks again. A group ID is written as a number.
// Records without either are unchanged (TestJSONIsTheLegacyRecord).
func TestJSONBridgeVLANAndGroup(t *testing.T) {
	c := port.Config{Name: "vnet1", BridgeVLAN: true, VLAN: 300, VSIGroup: 4000000000, MACs: []net.HardwareAddr{mac("52:54:00:12:34:56")}}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"name":"vnet1","macs":["52:54:00:12:34:56"],"vlan_from_bridge":true,"vsi_group":4000000000}`; string(b) != want {
		t.Fatalf("record %s, want %s", b, want)
	}
	var back port.Config
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	c.VLAN = 0
	if !reflect.DeepEqual(back, c) {
		t.Errorf("read back %+v, want %+v", back, c)
	}
	for rec, msg := range map[string]string{
		`{"name":"vnet1","vlan":7,"vlan_from_bridge":true}`:         "port vnet1: the record asks the bridge for the VLAN (vlan_from_bridge) and names VLAN 7 too",
		`{"name":"vnet1","trunk":"10","vlan_from_bridge":true}`:     "port vnet1: the bridge assigns a VLAN to an access port",
		`{"name":"vnet1","vlan":7,"vsi_group":-1}`:                  "invalid VSI group -1: must be 1-4294967295, or 0 for none",
		`{"name":"vnet1","vlan":7,"vsi_group":4294967296}`:          "invalid VSI group 4294967296",
		`{"name":"vnet1","vlan_from_bridge":true,"native_vlan":10}`: "a native VLAN needs a trunk port",
	} {
		var c port.Config
		if err := json.Unmarshal([]byte(rec), &c); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: %v, want %q", rec, err, msg)
		}
	}
}

func TestParseVSIGroup(t *testing.T) {
	for in, want := range map[string]uint32{"0": 0, " 1 ": 1, "4294967295": 4294967295} {
		if g, err := port.ParseVSIGroup(in); err != nil || g != want {
			t.Errorf("ParseVSIGroup(%q) = %d, %v", in, g, err)
		}
	}
	for in, msg := range map[string]string{"-1": "invalid VSI group -1", "4294967296": "must be 1-4294967295", "x": `invalid VSI group "x": must be a number`, "": "must be a number"} {
		_, err := port.ParseVSIGroup(in)
		var pe *port.Error
		if !errors.As(err, &pe) || pe.Field != port.FieldVSIGroup || !strings.Contains(err.Error(), msg) {
			t.Errorf("ParseVSIGroup(%q): %v, want %q", in, err, msg)
		}
	}
}

// What a port registers over VDP: the format by MACs and group, one entry
// per VID, and the TLV's bound on entries per VSI.
func TestVDPLayout(t *testing.T) {
	m1, m2 := mac("52:54:00:00:00:01"), mac("52:54:00:00:00:02")
	for _, tc := range []struct {
		name      string
		c         port.Config
		registers bool
		format    uint8
		vids      []uint16
		perVSI    int
	}{
		{"access, no MAC", port.Config{Name: "p", VLAN: 10}, false, vepa.FilterVID, []uint16{10}, 1},
		{"access with MAC", port.Config{Name: "p", VLAN: 10, MACs: []net.HardwareAddr{m1}}, true, vepa.FilterMACVID, []uint16{10}, 1},
		{"VLAN from the bridge, nothing else", port.Config{Name: "p", BridgeVLAN: true, VLAN: 99}, true, vepa.FilterVID, []uint16{0}, 1},
		{"group", port.Config{Name: "p", VLAN: 10, VSIGroup: 5}, true, vepa.FilterGroupVID, []uint16{10}, 1},
		{"group and MACs", port.Config{Name: "p", BridgeVLAN: true, VSIGroup: 5, MACs: []net.HardwareAddr{m1, m2}}, true, vepa.FilterGroupMACVID, []uint16{0}, 1},
		{"trunk with native", port.Config{Name: "p", Trunk: trunk(t, "10,20-22"), NativeVLAN: 5, MACs: []net.HardwareAddr{m1}}, true, vepa.FilterMACVID, []uint16{5, 10, 20, 21, 22}, 5},
		{"trunk, two MACs as one VSI", port.Config{Name: "p", Trunk: trunk(t, "10,20"), NativeVLAN: 10, MACs: []net.HardwareAddr{m1, m2}, InstanceID: "0b6d9a3c-5e55-4f4e-9f11-2f0d5a6b7c8d"}, true, vepa.FilterMACVID, []uint16{10, 20}, 4},
	} {
		c := tc.c
		if c.RegistersVSIs() != tc.registers || c.VDPFilterFormat() != tc.format || !reflect.DeepEqual(c.VDPVIDs(), tc.vids) || c.VDPFiltersPerVSI() != tc.perVSI {
			t.Errorf("%s: registers %v, format %d, VIDs %v, per VSI %d", tc.name, c.RegistersVSIs(), c.VDPFilterFormat(), c.VDPVIDs(), c.VDPFiltersPerVSI())
		}
		if err := c.CheckVDP(); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	// 60 MAC+VID entries fit a VSI TLV, 61 do not; 40 of group+MAC+VID.
	m := []net.HardwareAddr{m1}
	if c := (port.Config{Name: "p", Trunk: trunk(t, "1-60"), MACs: m}); c.CheckVDP() != nil {
		t.Errorf("60 VIDs: %v", c.CheckVDP())
	}
	c := port.Config{Name: "vnet1", Trunk: trunk(t, "1-60"), NativeVLAN: 100, MACs: m}
	err := c.CheckVDP()
	var pe *port.Error
	if !errors.As(err, &pe) || pe.Field != port.FieldVSIFilters ||
		err.Error() != "port vnet1: VDP would register 61 filter entries per VSI (61 VIDs), more than the 60 of format MAC+VID one VSI TLV holds: allow fewer VLANs" {
		t.Errorf("61 VIDs: %v", err)
	}
	c = port.Config{Name: "vnet1", Trunk: trunk(t, "1-30"), MACs: []net.HardwareAddr{m1, m2}, VSIGroup: 1, InstanceID: "0b6d9a3c-5e55-4f4e-9f11-2f0d5a6b7c8d"}
	if err := c.CheckVDP(); err == nil || !strings.Contains(err.Error(), "60 filter entries per VSI (30 VIDs × 2 MACs under one instance ID), more than the 40 of format group+MAC+VID") {
		t.Errorf("group+MAC+VID: %v", err)
	}
	// A trunk of every VLAN without MACs registers nothing: nothing to refuse.
	if c := (port.Config{Name: "p", Trunk: trunk(t, "1-4094")}); c.CheckVDP() != nil {
		t.Errorf("trunk without MACs: %v", c.CheckVDP())
	}
}

// The command line's and libvirt's VLAN: 0 asks the bridge.
func TestParseAccessVLAN(t *testing.T) {
	for in, want := range map[string]struct {
		vid    uint16
		bridge bool
	}{"0": {0, true}, " 00 ": {0, true}, "1": {1, false}, "4094": {4094, false}} {
		vid, bridge, err := port.ParseAccessVLAN(in)
		if err != nil || vid != want.vid || bridge != want.bridge {
			t.Errorf("ParseAccessVLAN(%q) = %d, %v, %v", in, vid, bridge, err)
		}
	}
	for in, msg := range map[string]string{"4095": "invalid VLAN 4095: must be 1-4094, or 0 for the bridge to assign it", "-1": "invalid VLAN -1",
		"ten": `invalid VLAN "ten": must be a number 1-4094, or 0`, "": `invalid VLAN ""`} {
		_, _, err := port.ParseAccessVLAN(in)
		var pe *port.Error
		if !errors.As(err, &pe) || pe.Field != port.FieldVLAN || !strings.Contains(err.Error(), msg) {
			t.Errorf("ParseAccessVLAN(%q): %v, want %q", in, err, msg)
		}
	}
}
