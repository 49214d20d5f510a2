package integration

import (
	"strings"
	"testing"

	"github.com/vswitch/vswitch/test/topo"
)

// hook runs `vswctl libvirt-hook ARGS` against h's daemon with xml on stdin,
// as libvirt runs /etc/libvirt/hooks/qemu.
func (h *hv) hook(xml string, args ...string) ctlResult {
	h.lab.t.Helper()
	return runCtlIn(h.lab.t, strings.NewReader(xml), append([]string{"--socket", h.sock, "libvirt-hook"}, args...)...)
}

// domainXML is a live domain XML with one vswitch NIC on tap `tap`.
func domainXML(tap, mac, attrs string) string {
	return `<domain type='kvm' id='3'><name>web1</name><uuid>4dea22b3-1d52-d8f3-2516-782e98ab3fa0</uuid>
  <metadata><vsw:ports xmlns:vsw="urn:vswitch:libvirt:1"><vsw:port mac="` + mac + `" ` + attrs + `/></vsw:ports></metadata>
  <devices><interface type='ethernet'><mac address='` + mac + `'/><target dev='` + tap + `' managed='no'/><model type='virtio'/></interface></devices>
</domain>`
}

// libvirt's hook protocol end to end: "start begin" (taps just created)
// adds the port described in the domain metadata on the NIC's tap, a
// second start replaces a leftover port, "reconnect begin" keeps it,
// "release end" deletes it, other calls do nothing, and a description that
// cannot be applied fails the start with one line that says why.
func TestLibvirtHook(t *testing.T) {
	needBinaries(t)
	t.Parallel()
	_, hvs := newLab(t, "afpacket", 1)
	h := hvs[0]
	if _, err := topo.Tap(h.ns, "vnet7"); err != nil {
		t.Fatal(err)
	}
	h.start()
	const mac = "52:54:00:12:34:56"
	xml := domainXML("vnet7", mac, `vlan="100" pcp="3"`)

	if r := h.hook(xml, "web1", "prepare", "begin", "-"); r.code != 0 || len(h.ports()) != 0 {
		t.Fatalf("prepare begin: exit %d (%s), ports %v: want nothing done", r.code, r.stderr, h.ports())
	}
	r := h.hook(xml, "web1", "start", "begin", "-")
	if r.code != 0 || !strings.Contains(r.stdout, "port vnet7") {
		t.Fatalf("start begin: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	ps := h.ports()
	if len(ps) != 1 || ps[0].Name != "vnet7" || ps[0].VLAN != 100 || ps[0].PCP != 3 || len(ps[0].MACs) != 1 || ps[0].MACs[0] != mac ||
		ps[0].State == "absent" {
		t.Fatalf("ports after start: %+v", ps)
	}
	if ps[0].Owner != "4dea22b3-1d52-d8f3-2516-782e98ab3fa0" {
		t.Errorf("port added by the hook has owner %q, want the domain's UUID", ps[0].Owner)
	}
	// Another domain whose metadata lists this VM's MAC stops: the port
	// is not its own (it used to be deleted, matched by MAC alone).
	other := strings.Replace(strings.Replace(xml, "4dea22b3-1d52-d8f3-2516-782e98ab3fa0", "0b6d9a3c-5e55-4f4e-9f11-2f0d5a6b7c8d", 1), "web1", "web2", 1)
	if r := h.hook(other, "web2", "stopped", "end", "-"); r.code != 0 || len(h.ports()) != 1 {
		t.Fatalf("stopped end of another domain listing the MAC: exit %d (%s), ports %v: want the port kept", r.code, r.stderr, h.ports())
	}
	// A leftover port of that tap name (a VM before) is replaced.
	h.mustCtl("set-port", "vnet7", "--pcp", "6")
	if r := h.hook(xml, "web1", "start", "begin", "-"); r.code != 0 {
		t.Fatalf("second start: %+v", r)
	}
	if ps := h.ports(); len(ps) != 1 || ps[0].PCP != 3 {
		t.Errorf("start did not replace the leftover port: %+v", ps)
	}
	// libvirtd restarted with the VM running: the port stays as it is.
	h.mustCtl("set-port", "vnet7", "--pcp", "5")
	if r := h.hook(xml, "web1", "reconnect", "begin", "-"); r.code != 0 {
		t.Fatalf("reconnect: %+v", r)
	}
	if ps := h.ports(); len(ps) != 1 || ps[0].PCP != 5 {
		t.Errorf("reconnect changed the running VM's port: %+v", ps)
	}
	// A port that differs from the description at reconnect is reported,
	// not changed; a description that cannot be applied at reconnect does
	// not fail the hook (libvirt would kill the running VM).
	if r := h.hook(xml, "web1", "reconnect", "begin", "-"); r.code != 0 || !strings.Contains(r.stderr, "differs from the domain's description") {
		t.Errorf("reconnect with a changed port: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := h.hook(domainXML("vnet7", mac, `vlan="5000"`), "web1", "reconnect", "begin", "-"); r.code != 0 || !strings.Contains(r.stderr, "ignored") {
		t.Errorf("reconnect with a bad description: exit %d, stderr %q; want 0 and a note", r.code, r.stderr)
	}
	// By "stopped end"/"release end" libvirt has deleted a managed tap and
	// its name from the XML: the port is found by its MAC.
	stopped := strings.Replace(xml, "<target dev='vnet7' managed='no'/>", "", 1)
	if r := h.hook(stopped, "web1", "stopped", "end", "-"); r.code != 0 || len(h.ports()) != 0 {
		t.Errorf("stopped end without <target dev>: exit %d (%s), ports %v", r.code, r.stderr, h.ports())
	}
	if r := h.hook(stopped, "web1", "release", "end", "shutdown"); r.code != 0 {
		t.Errorf("release end with the port already gone failed: %+v", r)
	}
	// Another VM's port (another MAC) is left alone, and so is one with
	// the domain's MAC that vswctl added (no owner).
	h.addPort("vnet7", "--vlan", "300", "--mac", "52:54:00:99:99:99")
	if r := h.hook(stopped, "web1", "release", "end", "shutdown"); r.code != 0 || len(h.ports()) != 1 {
		t.Errorf("release end deleted another VM's port: %+v, ports %v", r, h.ports())
	}
	h.mustCtl("set-port", "vnet7", "--mac", mac)
	if r := h.hook(stopped, "web1", "release", "end", "shutdown"); r.code != 0 || len(h.ports()) != 1 {
		t.Errorf("release end deleted a port vswctl added with the domain's MAC: %+v, ports %v", r, h.ports())
	}
	h.mustCtl("del-port", "vnet7")

	// Descriptions that cannot be applied stop the VM from starting, with
	// one line on stderr.
	for _, bad := range []struct{ xml, want string }{
		{domainXML("vnet7", mac, `vlan="5000"`), "invalid VLAN 5000"},
		{strings.Replace(domainXML("vnet7", mac, `vlan="100"`), "<interface type='ethernet'>", "<interface type='bridge'>", 1), "type='ethernet'"},
		{"<domain", "domain XML"},
	} {
		r := h.hook(bad.xml, "web1", "start", "begin", "-")
		if r.code != 1 || !strings.Contains(r.stderr, bad.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("start with a bad description: exit %d, stderr %q; want 1 and one line with %q", r.code, r.stderr, bad.want)
		}
	}
	if ps := h.ports(); len(ps) != 0 {
		t.Errorf("failed starts left ports: %+v", ps)
	}
}
