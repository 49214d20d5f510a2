package libvirt

import (
	"slices"
	"strings"
	"testing"

	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/port"
)

// A live domain XML as libvirt passes it to the hook at "start begin"
// (trimmed): two vswitch NICs, one libvirt-bridged NIC, metadata of
// another application next to ours.
const liveXML = `<domain type='kvm' id='7'>
  <name>web1</name>
  <uuid>4dea22b3-1d52-d8f3-2516-782e98ab3fa0</uuid>
  <metadata>
    <app1:foo xmlns:app1="http://app1.org/app1/">..</app1:foo>
    <vsw:ports xmlns:vsw="urn:vswitch:libvirt:1">
      <vsw:port mac="52:54:00:12:34:56" vlan="100" pcp="3"/>
      <vsw:port mac="52:54:00:AB:CD:EF" trunk="10,20-30" native-vlan="10" svid="7"/>
    </vsw:ports>
  </metadata>
  <devices>
    <interface type='ethernet'>
      <mac address='52:54:00:12:34:56'/>
      <target dev='vnet7' managed='no'/>
      <model type='virtio'/>
    </interface>
    <interface type='bridge'>
      <mac address='52:54:00:00:00:99'/>
      <source bridge='virbr0'/>
      <target dev='vnet8'/>
    </interface>
    <interface type='ethernet'>
      <mac address='52:54:00:ab:cd:ef'/>
      <target dev='vnet9'/>
    </interface>
  </devices>
</domain>`

// testUUID is the domain UUID of the test XMLs.
const testUUID = "4dea22b3-1d52-d8f3-2516-782e98ab3fa0"

func TestParseLiveDomain(t *testing.T) {
	d, err := ParseDomain(strings.NewReader(liveXML))
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "web1" || len(d.Interfaces) != 3 || len(d.Ports) != 2 {
		t.Fatalf("domain %+v", d)
	}
	bs, err := d.Bindings()
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 2 {
		t.Fatalf("bindings %+v", bs)
	}
	a, b := bs[0], bs[1]
	if a.Tap != "vnet7" || *a.Port.VLAN != 100 || *a.Port.PCP != 3 || a.Port.Trunk != nil || a.Port.SVID != nil {
		t.Errorf("first binding %+v", a)
	}
	if b.Tap != "vnet9" || b.Port.VLAN != nil || *b.Port.Trunk != "10,20-30" || *b.Port.NativeVLAN != 10 || *b.Port.SVID != 7 ||
		b.Port.MAC.String() != "52:54:00:ab:cd:ef" {
		t.Errorf("second binding (MAC matched case-insensitively) %+v", b)
	}
}

func TestNoPortsIsNotAnError(t *testing.T) {
	d, err := ParseDomain(strings.NewReader(`<domain><name>plain</name><devices><interface type='network'><mac address='52:54:00:00:00:01'/></interface></devices></domain>`))
	if err != nil {
		t.Fatal(err)
	}
	if bs, err := d.Bindings(); err != nil || len(bs) != 0 {
		t.Errorf("a domain without vswitch metadata: %v, %v", bs, err)
	}
}

func TestBadDomains(t *testing.T) {
	port := func(attrs string) string {
		return `<domain><name>d</name><uuid>` + testUUID + `</uuid><metadata><vsw:port xmlns:vsw="urn:vswitch:libvirt:1" ` + attrs + `/></metadata>` +
			`<devices><interface type='ethernet'><mac address='52:54:00:00:00:01'/><target dev='vnet1'/></interface>` +
			`<interface type='bridge'><mac address='52:54:00:00:00:02'/><target dev='vnet2'/></interface>` +
			`<interface type='ethernet'><mac address='52:54:00:00:00:03'/></interface></devices></domain>`
	}
	for name, tc := range map[string]struct{ xml, want string }{
		"empty":          {"", "no domain XML"},
		"not xml":        {"<domain", "domain XML"},
		"bad nic mac":    {`<domain><devices><interface type='ethernet'><mac address='zz'/></interface></devices></domain>`, "not an Ethernet address"},
		"no mac":         {port(`vlan="1"`), "without a mac"},
		"bad mac":        {port(`mac="1:2" vlan="1"`), "not an Ethernet address"},
		"vlan and trunk": {port(`mac="52:54:00:00:00:01" vlan="1" trunk="2"`), "exactly one of vlan and trunk"},
		"neither":        {port(`mac="52:54:00:00:00:01"`), "exactly one of vlan and trunk"},
		"vlan not num":   {port(`mac="52:54:00:00:00:01" vlan="ten"`), "not a number"},
		"no nic":         {port(`mac="52:54:00:00:00:09" vlan="1"`), "matches no <interface>"},
		"bridge nic":     {port(`mac="52:54:00:00:00:02" vlan="1"`), "type='ethernet'"},
		"no target":      {port(`mac="52:54:00:00:00:03" vlan="1"`), "no <target dev>"},
		"unknown attr":   {port(`mac="52:54:00:00:00:01" vlan="1" pcpp="3"`), "unknown attribute"},
		"two for a MAC":  {strings.Replace(port(`mac="52:54:00:00:00:01" vlan="1"`), "</metadata>", `<vsw:port xmlns:vsw="urn:vswitch:libvirt:1" mac="52:54:00:00:00:01" vlan="2"/></metadata>`, 1), "two <vsw:port"},
		"not a domain":   {`<network><name>n</name></network>`, "not a domain XML"},
		"no uuid":        {strings.Replace(port(`mac="52:54:00:00:00:01" vlan="1"`), "<uuid>"+testUUID+"</uuid>", "", 1), "domain d: no <uuid>"},
	} {
		d, err := ParseDomain(strings.NewReader(tc.xml))
		if err == nil {
			_, err = d.Bindings()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one saying %q", name, err, tc.want)
		}
	}
}

// Bindings judges each port by vswitchd's rules (api.PortSpec.Apply), so
// the hook refuses a bad description before it sends anything; ParseDomain
// does not, so the ports of such a domain can still be removed.
func TestBindingsUseThePortRules(t *testing.T) {
	dom := func(mac, attrs string) string {
		return `<domain><name>d</name><uuid>` + testUUID + `</uuid><metadata><vsw:port xmlns:vsw="urn:vswitch:libvirt:1" mac="` + mac + `" ` + attrs + `/></metadata>` +
			`<devices><interface type='ethernet'><mac address='` + mac + `'/><target dev='vnet1'/></interface></devices></domain>`
	}
	const m = "52:54:00:00:00:01"
	for attrs, want := range map[string]string{
		`vlan="5000"`:                   "domain d: port vnet1: invalid VLAN 5000: must be 1-4094",
		`vlan="-1"`:                     "invalid VLAN -1: must be 1-4094",
		`trunk="1-100" vsi-group="3"`:   "VDP would register 100 filter entries per VSI",
		`vlan="10" vsi-group="-1"`:      "invalid VSI group -1",
		`vlan="10" native-vlan="20"`:    "port vnet1: a native VLAN needs a trunk port",
		`trunk="30-20"`:                 "range 30-20 is backwards; write it 20-30",
		`trunk=""`:                      "needs a VLAN",
		`trunk="10" native-vlan="4095"`: "invalid native VLAN 4095",
		`vlan="10" pcp="8"`:             "invalid PCP 8: must be 0-7",
		`vlan="10" svid="4095"`:         "invalid S-VLAN 4095",
	} {
		d, err := ParseDomain(strings.NewReader(dom(m, attrs)))
		if err != nil || len(d.MACs()) != 1 {
			t.Errorf("%s: ParseDomain = %v, want the port found (for removal)", attrs, err)
			continue
		}
		if _, err := d.Bindings(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: Bindings = %v, want an error with %q", attrs, err, want)
		}
	}
	d, err := ParseDomain(strings.NewReader(dom("01:00:5e:00:00:01", `vlan="10"`)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Bindings(); err == nil || !strings.Contains(err.Error(), "must be unicast") {
		t.Errorf("multicast NIC MAC: %v", err)
	}
	d, err = ParseDomain(strings.NewReader(dom(m, `trunk=" 30,10-12 " native-vlan="10" pcp="3" svid="7"`)))
	if err != nil {
		t.Fatal(err)
	}
	bs, err := d.Bindings()
	if err != nil || len(bs) != 1 {
		t.Fatalf("valid trunk: %v, %v", bs, err)
	}
	s := bs[0].Spec()
	if s.Name != "vnet1" || *s.Trunk != "30,10-12" || *s.NativeVLAN != 10 || *s.PCP != 3 || *s.SVID != 7 || s.VLAN != nil || len(*s.MACs) != 1 || (*s.MACs)[0] != m ||
		*s.Owner != testUUID {
		t.Errorf("Spec = %+v", s)
	}
}

// The namespace prefix may be declared on <domain> or on <metadata>, as
// XML allows; the ports must be found either way (ignoring them would start
// the VM unswitched).
func TestNamespaceDeclaredAbove(t *testing.T) {
	for _, xml := range []string{
		`<domain xmlns:vsw="urn:vswitch:libvirt:1"><name>a</name><metadata><vsw:ports><vsw:port mac="52:54:00:00:00:01" vlan="5"/></vsw:ports></metadata></domain>`,
		`<domain><name>b</name><metadata xmlns:vsw="urn:vswitch:libvirt:1"><vsw:ports><vsw:port mac="52:54:00:00:00:01" vlan="5"/></vsw:ports></metadata></domain>`,
		`<domain><name>c</name><metadata><ports xmlns="urn:vswitch:libvirt:1"><port mac="52:54:00:00:00:01" vlan="5"/></ports></metadata></domain>`,
	} {
		d, err := ParseDomain(strings.NewReader(xml))
		if err != nil || len(d.Ports) != 1 || *d.Ports[0].VLAN != 5 {
			t.Errorf("%s: %+v, %v", xml, d, err)
		}
	}
	// Our element outside <metadata> is not a port description.
	d, err := ParseDomain(strings.NewReader(`<domain xmlns:vsw="urn:vswitch:libvirt:1"><name>d</name><devices><vsw:port mac="52:54:00:00:00:01" vlan="5"/></devices></domain>`))
	if err != nil || len(d.Ports) != 0 {
		t.Errorf("port outside metadata: %+v, %v", d, err)
	}
}

func TestHookActions(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want Action
	}{
		{[]string{"web1", "prepare", "begin", "-"}, Prepare},
		{[]string{"web1", "start", "begin", "-"}, Configure},
		{[]string{"web1", "started", "begin", "-"}, Confirm},
		{[]string{"web1", "reconnect", "begin", "-"}, Configure},
		{[]string{"web1", "stopped", "end", "-"}, Remove},
		{[]string{"web1", "release", "end", "shutdown"}, Remove},
		{[]string{"web1", "migrate", "begin", "-"}, Incoming},
	} {
		c, err := ParseHookArgs(tc.args)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Action(); got != tc.want {
			t.Errorf("%v: action %d, want %d", tc.args, got, tc.want)
		}
	}
	if c, _ := ParseHookArgs([]string{"d", "release", "end", "crashed"}); c.Extra != "crashed" {
		t.Errorf("extra %q", c.Extra)
	}
	for op, want := range map[string]bool{"start": false, "reconnect": true, "stopped": true, "release": true} {
		if c, _ := ParseHookArgs([]string{"d", op, "begin"}); c.BestEffort() != want {
			t.Errorf("%s best effort = %v", op, !want)
		}
	}
	if _, err := ParseHookArgs([]string{"d", "start"}); err == nil {
		t.Error("accepted two arguments")
	}
}

func FuzzParseDomain(f *testing.F) {
	f.Add(liveXML)
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDomain(strings.NewReader(s))
		if err != nil {
			return
		}
		bs, err := d.Bindings()
		if err != nil {
			return
		}
		for _, b := range bs {
			if b.Tap == "" || len(b.Port.MAC) != 6 || (b.Port.VLAN == nil) == (b.Port.Trunk == nil) {
				t.Fatalf("invalid binding %+v", b)
			}
			if _, err := b.Spec().Apply(port.Config{}); err != nil {
				t.Fatalf("binding %+v: the daemon would refuse it: %v", b, err)
			}
		}
	})
}

// At a domain's stop the hook removes only the ports that domain added
// (owner = its UUID) and that carry one of its MACs: domain B's metadata
// listing VM A's MAC no longer removes A's port, nor does a port added by
// vswctl (no owner) or one of A's whose MAC A no longer describes.
func TestOwnedNeedsDomainAndMAC(t *testing.T) {
	const (
		uuidA = "4dea22b3-1d52-d8f3-2516-782e98ab3fa0"
		uuidB = "0b6d9a3c-5e55-4f4e-9f11-2f0d5a6b7c8d"
		macA  = "52:54:00:00:00:0a"
	)
	dom := func(uuid string, macs ...string) *Domain {
		x := `<domain><name>n</name><uuid>` + uuid + `</uuid><metadata><vsw:ports xmlns:vsw="urn:vswitch:libvirt:1">`
		for _, m := range macs {
			x += `<vsw:port mac="` + m + `" vlan="10"/>`
		}
		d, err := ParseDomain(strings.NewReader(x + `</vsw:ports></metadata></domain>`))
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	ports := []api.Port{
		{Name: "vnetA", Owner: uuidA, MACs: []string{macA}},
		{Name: "manual", MACs: []string{macA}},                              // vswctl add-port: nobody's
		{Name: "vnetA2", Owner: uuidA, MACs: []string{"52:54:00:00:00:0c"}}, // A's, a MAC A dropped
		{Name: "vnetB", Owner: uuidB, MACs: []string{"52:54:00:00:00:0b"}},
	}
	names := func(ps []api.Port) (out []string) {
		for _, p := range ps {
			out = append(out, p.Name)
		}
		return out
	}
	a := dom(strings.ToUpper(uuidA), strings.ToUpper(macA)) // case does not matter
	if a.Owner() != uuidA {
		t.Errorf("owner %q, want the UUID in lower case", a.Owner())
	}
	if got := names(a.Owned(ports)); !slices.Equal(got, []string{"vnetA"}) {
		t.Errorf("domain A owns %v, want [vnetA]", got)
	}
	if got := names(dom(uuidB, macA, "52:54:00:00:00:0b").Owned(ports)); !slices.Equal(got, []string{"vnetB"}) {
		t.Errorf("domain B (listing A's MAC too) owns %v, want only [vnetB]", got)
	}
	if got := dom("", macA).Owned(ports); len(got) != 0 {
		t.Errorf("a domain without UUID owns %v", names(got))
	}
	// The binding's request records the owner.
	d, err := ParseDomain(strings.NewReader(liveXML))
	if err != nil {
		t.Fatal(err)
	}
	bs, err := d.Bindings()
	if err != nil || len(bs) != 2 || *bs[0].Spec().Owner != uuidA || *bs[1].Spec().Owner != uuidA {
		t.Fatalf("bindings of the live XML %+v, %v: want owner %s", bs, err, uuidA)
	}
}
