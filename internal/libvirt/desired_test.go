package libvirt

import (
	"errors"
	"strings"
	"testing"

	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/port"
)

// Desired sets up what it can and names each port it cannot: a MAC
// without a NIC (ErrNoNIC: the normal state around a hot-plug), a NIC of
// another type, a description the port rules refuse (with its tap, so the
// follower keeps that port as it is). Bindings fails on the first of them,
// as the hook's "start begin" must.
func TestDesired(t *testing.T) {
	x := `<domain><name>d</name><uuid>` + testUUID + `</uuid><metadata><vsw:ports xmlns:vsw="urn:vswitch:libvirt:1">
	  <vsw:port mac="52:54:00:00:00:01" vlan="100"/>
	  <vsw:port mac="52:54:00:00:00:09" vlan="100"/>
	  <vsw:port mac="52:54:00:00:00:02" vlan="100"/>
	  <vsw:port mac="52:54:00:00:00:03" vlan="5000"/>
	  <vsw:port mac="52:54:00:00:00:04" trunk="7"/>
	</vsw:ports></metadata><devices>
	  <interface type='ethernet'><mac address='52:54:00:00:00:01'/><target dev='vnet1'/></interface>
	  <interface type='bridge'><mac address='52:54:00:00:00:02'/><target dev='vnet2'/></interface>
	  <interface type='ethernet'><mac address='52:54:00:00:00:03'/><target dev='vnet3'/></interface>
	  <interface type='ethernet'><mac address='52:54:00:00:00:04'/><target dev='vnet4'/></interface>
	</devices></domain>`
	d, err := ParseDomain(strings.NewReader(x))
	if err != nil {
		t.Fatal(err)
	}
	bs, errs := d.Desired()
	if len(bs) != 2 || bs[0].Tap != "vnet1" || bs[1].Tap != "vnet4" {
		t.Errorf("bindings %+v; want vnet1 and vnet4", bs)
	}
	if len(errs) != 3 {
		t.Fatalf("errors %v; want 3", errs)
	}
	var pe *PortError
	for i, c := range []struct {
		noNIC bool
		tap   string
		text  string
	}{
		{true, "", "domain d: <vsw:port mac=\"52:54:00:00:00:09\"> matches no <interface>"},
		{false, "vnet2", "type='ethernet'"},
		{false, "vnet3", "domain d: port vnet3: invalid VLAN 5000"},
	} {
		if !errors.As(errs[i], &pe) || pe.Tap != c.tap || errors.Is(errs[i], ErrNoNIC) != c.noNIC || !strings.Contains(errs[i].Error(), c.text) {
			t.Errorf("error %d: %v (tap %q, no NIC %v); want tap %q, no NIC %v, %q", i, errs[i], pe.Tap, errors.Is(errs[i], ErrNoNIC), c.tap, c.noNIC, c.text)
		}
	}
	if _, err := d.Bindings(); err == nil || err.Error() != errs[0].Error() {
		t.Errorf("Bindings: %v; want Desired's first error", err)
	}
}

// UpdateSpec takes off the port what the description no longer sets;
// Describes tells whether a port is already what the description says.
func TestUpdateSpecAndDescribes(t *testing.T) {
	const mac = "52:54:00:00:00:01"
	bind := func(attrs string) Binding {
		t.Helper()
		d, err := ParseDomain(strings.NewReader(`<domain><name>d</name><uuid>` + testUUID + `</uuid><metadata><vsw:port xmlns:vsw="urn:vswitch:libvirt:1" mac="` + mac + `" ` + attrs + `/></metadata>` +
			`<devices><interface type='ethernet'><mac address='` + mac + `'/><target dev='vnet1'/></interface></devices></domain>`))
		if err != nil {
			t.Fatal(err)
		}
		bs, err := d.Bindings()
		if err != nil {
			t.Fatal(err)
		}
		return bs[0]
	}
	// The port as it was: trunk with native VLAN, PCP, S-channel, flood, a
	// VSI identity, incoming.
	old, err := bind(`trunk="10-12" native-vlan="10" pcp="5" svid="7" vsi-type="9" vsi-type-version="1" vsi-manager="mgr" instance-id="0b6d9a3c-5e55-4f4e-9f11-2f0d5a6b7c8d"`).Spec().Apply(port.Config{})
	if err != nil {
		t.Fatal(err)
	}
	old.Flood, old.Migration = true, port.MigrationIncoming
	for _, c := range []struct {
		attrs string
		want  func(api.Port) bool
	}{
		{`vlan="100"`, func(p api.Port) bool {
			return p.VLAN == 100 && len(p.Trunk) == 0 && p.NativeVLAN == 0 && p.PCP == 0 && p.SVID == 0 &&
				p.VSIType == 0 && p.VSITypeVersion == 0 && p.VSIManager == "" && p.InstanceID == ""
		}},
		{`vlan="100" vsi-type="1193047" vsi-type-version="2" vsi-manager="12"`, func(p api.Port) bool {
			return p.VLAN == 100 && p.VSIType == 1193047 && p.VSITypeVersion == 2 && p.VSIManager == "12" && p.InstanceID == ""
		}},
		{`trunk="20"`, func(p api.Port) bool {
			return p.VLAN == 0 && len(p.Trunk) == 1 && p.NativeVLAN == 0 && p.PCP == 0 && p.SVID == 0
		}},
		{`vlan="100" pcp="2" svid="9"`, func(p api.Port) bool { return p.VLAN == 100 && p.PCP == 2 && p.SVID == 9 }},
		{`vlan="0" vsi-group="7"`, func(p api.Port) bool {
			return p.VLAN == 0 && p.VLANFromBridge && p.VSIGroup == 7 && len(p.Trunk) == 0 && p.NativeVLAN == 0 && p.SVID == 0
		}},
	} {
		b := bind(c.attrs)
		cfg, err := b.UpdateSpec().Apply(old)
		if err != nil {
			t.Errorf("%s: UpdateSpec on the old port: %v", c.attrs, err)
			continue
		}
		p := api.NewPort(cfg, "up", api.PortCounters{RxPackets: 5})
		if !c.want(p) || !p.Flood || p.Owner != testUUID || p.Migration != "incoming" {
			t.Errorf("%s: port after UpdateSpec %+v; want only what the description sets changed (flood and migration kept)", c.attrs, p)
		}
		if !b.Describes(p) {
			t.Errorf("%s: Describes(the updated port) = false", c.attrs)
		}
		if b.Describes(api.NewPort(old, "up", api.PortCounters{})) {
			t.Errorf("%s: Describes(the old port) = true", c.attrs)
		}
	}
	b := bind(`vlan="100"`)
	cfg, _ := b.Spec().Apply(port.Config{})
	for name, change := range map[string]func(*api.Port){
		"owner":            func(p *api.Port) { p.Owner = "" },
		"mac":              func(p *api.Port) { p.MACs = []string{"52:54:00:00:00:02"} },
		"macs":             func(p *api.Port) { p.MACs = append(p.MACs, "52:54:00:00:00:02") },
		"pcp":              func(p *api.Port) { p.PCP = 1 },
		"name":             func(p *api.Port) { p.Name = "vnet2" },
		"vsi type":         func(p *api.Port) { p.VSIType = 7 },
		"vsi type version": func(p *api.Port) { p.VSITypeVersion = 7 },
		"vsi manager":      func(p *api.Port) { p.VSIManager = "12" },
		"instance ID":      func(p *api.Port) { p.InstanceID = "0b6d9a3c-5e55-4f4e-9f11-2f0d5a6b7c8d" },
		"vlan from bridge": func(p *api.Port) { p.VLAN, p.VLANFromBridge = 0, true },
		"vsi group":        func(p *api.Port) { p.VSIGroup = 3 },
	} {
		p := api.NewPort(cfg, "up", api.PortCounters{})
		if !b.Describes(p) {
			t.Fatalf("Describes(its own port) = false")
		}
		change(&p)
		if b.Describes(p) {
			t.Errorf("Describes a port with another %s", name)
		}
	}
}

// Attributes count only without a prefix, as the schema says: another
// application's attribute is ignored even when named like ours, and ours
// with a prefix is an error that says to drop it.
func TestPortAttributeNamespaces(t *testing.T) {
	const head = `<domain><name>d</name><metadata><vsw:ports xmlns:vsw="urn:vswitch:libvirt:1" xmlns:o="urn:other">`
	d, err := ParseDomain(strings.NewReader(head + `<vsw:port o:vlan="7" mac="52:54:00:00:00:01" vlan="100" o:pcp="9"/></vsw:ports></metadata></domain>`))
	if err != nil || len(d.Ports) != 1 || *d.Ports[0].VLAN != 100 || d.Ports[0].PCP != nil {
		t.Errorf("foreign attributes named like ours: %+v, %v; want VLAN 100 and no PCP", d, err)
	}
	_, err = ParseDomain(strings.NewReader(head + `<vsw:port mac="52:54:00:00:00:01" vsw:vlan="100"/></vsw:ports></metadata></domain>`))
	if err == nil || !strings.Contains(err.Error(), "vsw:vlan=...>: write the attribute without a prefix") {
		t.Errorf("prefixed attribute: %v", err)
	}
}
