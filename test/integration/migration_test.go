package integration

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vswitch/vswitch/internal/uuid"
	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/test/topo"
)

// vdpLLDPAD is lldpadBridge with the VDP bridge role on the switch ports
// of hvs.
func vdpLLDPAD(t *testing.T, l *lab, hvs ...*hv) *topo.LLDPAD {
	t.Helper()
	return lldpadBridge(t, l, true, hvs...)
}

// waitBridgeVSI waits until lldpad received, after the first skip VSI
// TLVs, one that match accepts, and returns its index.
func waitBridgeVSI(t *testing.T, lp *topo.LLDPAD, skip int, timeout time.Duration, what string, match func(topo.VSIRecord) bool) int {
	t.Helper()
	i, err := lp.WaitVSI(skip, timeout, match)
	if err != nil {
		t.Fatalf("lldpad never received %s: %v", what, err)
	}
	return i
}

// libvirtState is h's libvirt state directory of QEMU domains, as the hook
// reads it (status files of running domains).
func (h *hv) libvirtState() string { return filepath.Join(h.dir, "libvirt-qemu") }

// hookAs runs the libvirt hook against h's daemon with h's libvirt state
// directory, as h's libvirtd would.
func (h *hv) hookAs(xml string, args ...string) ctlResult {
	h.lab.t.Helper()
	return runCtlEnv(h.lab.t, []string{"VSWCTL_LIBVIRT_STATE_DIR=" + h.libvirtState()}, strings.NewReader(xml),
		append([]string{"--socket", h.sock, "libvirt-hook"}, args...)...)
}

const testDomain = "4dea22b3-1d52-d8f3-2516-782e98ab3fa0" // domainXML's UUID

// VDP against lldpad's bridge role: the VSI of a domain's NIC carries the
// domain's VSI type, version and manager (libvirt's one-byte managerid,
// which lldpad shows as a number), and its VSIID is the version 5 UUID of
// the MAC in the domain's namespace; an instance ID replaces it (the old
// VSI is de-associated).
func TestVSIIdentityWithLLDPAD(t *testing.T) {
	needBinaries(t)
	t.Parallel()
	l, hvs := newLab(t, "afpacket", 1)
	h := hvs[0]
	lp := vdpLLDPAD(t, l, h)
	vm1 := h.addVM(1)
	h.start("--lldp-interval", "1s")
	h.waitRelay("granted by lldpad", 15*time.Second, func(st api.Status) bool { return st.Relay.State == "granted" })
	xml := domainXML(vm1.port, vm1.mac.String(), `vlan="100" pcp="3" vsi-type="1193047" vsi-type-version="2" vsi-manager="12"`)
	if r := h.hookAs(xml, "web1", "start", "begin", "-"); r.code != 0 {
		t.Fatalf("start begin: %+v", r)
	}
	dom, _ := uuid.Parse(testDomain)
	want := uuid.NameBased(dom, vm1.mac.String()).String()
	vs := h.waitVSIs("VSI associated by lldpad", 15*time.Second, func(vs []api.VSI) bool { return len(vs) == 1 && vs[0].State == "associated" })
	if v := vs[0]; v.UUID != want || v.TypeID != 1193047 || v.TypeVer != 2 || v.MgrID != "12" || v.VLAN != 100 || v.Reason != "" {
		t.Errorf("VSI %+v, want VSIID %s, type 1193047 version 2, manager 12", v, want)
	}
	waitBridgeVSI(t, lp, 0, 5*time.Second, "the domain's ASSOC", func(v topo.VSIRecord) bool {
		return v.Port == h.swPort && v.Mode == 3 && v.MgrID == "12" && v.TypeID == 1193047 && v.Version == 2 && v.IDFmt == 5 && v.ID == want
	})
	if out := h.mustCtl("vsis"); !containsAll(out, "1193047", want, "associated") {
		t.Errorf("vswctl vsis:\n%s", out)
	}
	// An instance ID of the operator's: the VSI under the old VSIID goes.
	const inst = "0b6d9a3c-5e55-4f4e-9f11-2f0d5a6b7c8d"
	n := len(lp.ReceivedVSIs())
	h.mustCtl("set-port", vm1.port, "--instance-id", inst)
	h.waitVSIs("the instance ID associated", 15*time.Second, func(vs []api.VSI) bool {
		return len(vs) == 1 && vs[0].UUID == inst && vs[0].State == "associated"
	})
	waitBridgeVSI(t, lp, n, 5*time.Second, "the old VSIID de-associated", func(v topo.VSIRecord) bool { return v.Mode == 4 && v.ID == want })
	waitBridgeVSI(t, lp, n, 5*time.Second, "the instance ID associated", func(v topo.VSIRecord) bool { return v.Mode == 3 && v.ID == inst && v.TypeID == 1193047 })
}

// rarpAnnounce is the frame QEMU sends for each NIC of a VM it has just
// resumed after an incoming migration (qemu_announce_self): a reverse ARP
// request from the VM's MAC to everyone, so that switches learn where the
// VM is now.
func rarpAnnounce(mac net.HardwareAddr) []byte {
	p := make([]byte, 28)
	binary.BigEndian.PutUint16(p[0:], 1)      // Ethernet
	binary.BigEndian.PutUint16(p[2:], 0x0800) // IPv4
	p[4], p[5] = 6, 4
	binary.BigEndian.PutUint16(p[6:], 3) // reverse request
	copy(p[8:], mac)
	copy(p[18:], mac)
	return topo.BuildEth(topo.BroadcastMAC(), mac, 0x8035, p)
}

// writeDomStatus writes libvirt's status file of domain web1 on h with its
// asynchronous job (as libvirt 9.0 formats it: <job type=... async=...
// phase=...>).
func (h *hv) writeDomStatus(state, reason, async, phase string) {
	t := h.lab.t
	t.Helper()
	if err := os.MkdirAll(h.libvirtState(), 0o700); err != nil {
		t.Fatal(err)
	}
	x := fmt.Sprintf("<domstatus state='%s' reason='%s' pid='4242'>\n  <job type='none' async='%s' phase='%s' flags='0x0'/>\n  <domain type='qemu' id='3'><name>web1</name><uuid>%s</uuid></domain>\n</domstatus>\n",
		state, reason, async, phase, testDomain)
	if err := os.WriteFile(filepath.Join(h.libvirtState(), "web1.xml"), []byte(x), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (h *hv) dropDomStatus() { _ = os.Remove(filepath.Join(h.libvirtState(), "web1.xml")) }

// hookSeq runs one libvirt hook call on h and fails the test unless it
// exits 0; the "migrate" call must print nothing (libvirt reads its output
// as the domain XML).
func (h *hv) hookSeq(xml string, args ...string) ctlResult {
	t := h.lab.t
	t.Helper()
	r := h.hookAs(xml, args...)
	if r.code != 0 {
		t.Fatalf("%s: hook %s: exit %d: %s", h.name, strings.Join(args, " "), r.code, r.stderr)
	}
	if args[1] == "migrate" && r.stdout != "" {
		t.Fatalf("%s: hook %s printed %q: libvirt would take it for the domain XML", h.name, strings.Join(args, " "), r.stdout)
	}
	return r
}

// portOf returns h's port name, or fails.
func (h *hv) portOf(name string) (api.Port, bool) {
	for _, p := range h.ports() {
		if p.Name == name {
			return p, true
		}
	}
	return api.Port{}, false
}

// Live migration of a VM between two hypervisors on one 802.1Qbg bridge
// (lldpad), replaying libvirt 9.0's hook calls on both hosts as its hooks
// documentation and its qemu driver make them:
//
//	destination: migrate begin -, prepare begin -, start begin -, started begin -
//	             ... memory copied, source paused, destination resumed ...
//	source:      stopped end -, release end -
//
// A successful move: the destination's port is added incoming and its VSI
// pre-associated (lldpad receives PRE-ASSOC with the domain's type,
// version, manager and VSIID) with the start waiting for the answer; no
// ASSOC until the VM runs; the VM's first frame (QEMU's RARP announce)
// makes it an ASSOC with the M bit; the source's stop, which libvirt's
// status file shows to end an outgoing migration, de-associates with the S
// bit and removes the port. Then a failed move back: the destination
// (now hv1) pre-associates, then libvirt stops its QEMU (stopped end,
// release end) and the port goes with a plain DE-ASSOC, while the source
// (hv2) keeps its VSI associated and the VM keeps talking.
func TestLiveMigrationWithLLDPAD(t *testing.T) {
	needBinaries(t)
	t.Parallel()
	l, hvs := newLab(t, "afpacket", 2)
	h1, h2 := hvs[0], hvs[1]
	lp := vdpLLDPAD(t, l, h1, h2)
	vm1, vm2 := h1.addVM(1), h1.addVM(2)
	// The VM on the destination before it runs: same MAC and address,
	// silent (a paused incoming QEMU sends nothing).
	ns, err := l.tp.NewNS("vm1b")
	if err != nil {
		t.Fatal(err)
	}
	vm1b := &vm{hv: h2, ns: ns, port: vm1.port, ip: vm1.ip, mac: vm1.mac, n: 1}
	vm1b.plug()
	for _, h := range hvs {
		h.start("--lldp-interval", "1s")
	}
	for _, h := range hvs {
		h.waitRelay("granted by lldpad", 15*time.Second, func(st api.Status) bool { return st.Relay.State == "granted" })
	}
	attrs := `vlan="100" vsi-type="1193047" vsi-type-version="2" vsi-manager="12"`
	live := domainXML(vm1.port, vm1.mac.String(), attrs)
	incoming := strings.Replace(live, "<target dev='"+vm1.port+"' managed='no'/>", "", 1) // the migratable XML: no tap yet
	dom, _ := uuid.Parse(testDomain)
	vsiid := uuid.NameBased(dom, vm1.mac.String()).String()
	identity := func(v topo.VSIRecord) bool {
		return v.MgrID == "12" && v.TypeID == 1193047 && v.Version == 2 && v.IDFmt == 5 && v.ID == vsiid
	}

	// The VM runs on hv1 (a plain start), vm2 beside it.
	h1.hookSeq(live, "web1", "prepare", "begin", "-")
	h1.hookSeq(live, "web1", "start", "begin", "-")
	h1.writeDomStatus("paused", "starting up", "start", "") // libvirt saved it before "started begin"
	h1.hookSeq(live, "web1", "started", "begin", "-")
	h1.dropDomStatus()
	h1.addPort(vm2.port, "--vlan", "100")
	h1.waitVSIs("the VM associated on hv1", 15*time.Second, func(vs []api.VSI) bool { return len(vs) == 1 && vs[0].State == "associated" })
	vm1.mustPing(vm2)

	// Migration to hv2.
	mark := len(lp.ReceivedVSIs())
	h2.hookSeq(incoming, "web1", "migrate", "begin", "-")
	if ps := h2.ports(); len(ps) != 0 {
		t.Fatalf("migrate begin added ports on hv2: %+v", ps)
	}
	h2.hookSeq(live, "web1", "prepare", "begin", "-")
	start := time.Now()
	r := h2.hookSeq(live, "web1", "start", "begin", "-")
	t.Logf("destination start begin: pre-association answered in %v (%s)", time.Since(start).Round(time.Millisecond), strings.TrimSpace(r.stdout))
	if p, ok := h2.portOf(vm1.port); !ok || p.Migration != "incoming" || p.Owner != testDomain {
		t.Fatalf("hv2's port after start begin: %+v (exists %v), want incoming", p, ok)
	}
	if vs := h2.waitVSIs("pre-associated on hv2", time.Second, func(vs []api.VSI) bool { return len(vs) == 1 }); vs[0].State != "preassociated" {
		t.Fatalf("hv2's VSI when start begin returned: %+v", vs[0])
	}
	pre := waitBridgeVSI(t, lp, mark, 5*time.Second, "PRE-ASSOC from hv2", func(v topo.VSIRecord) bool {
		return v.Port == h2.swPort && v.Mode == 1 && v.Status == 0 && identity(v)
	})
	// At "started begin" libvirt's status file says the domain is migrating
	// in (no such file yet at "start begin"): the port stays incoming.
	h2.writeDomStatus("paused", "migration", "migration in", "prepare")
	h2.hookSeq(live, "web1", "started", "begin", "-")
	// The memory is copied; the VM still runs on hv1 and talks there.
	vm1.mustPing(vm2)
	time.Sleep(time.Second)
	for _, v := range lp.ReceivedVSIs()[mark:] {
		if v.Port == h2.swPort && v.Mode == 3 {
			t.Fatalf("hv2 associated before the VM ran there: %s", v)
		}
	}
	if p, _ := h2.portOf(vm1.port); p.Migration != "incoming" {
		t.Fatalf("hv2's port promoted before the VM sent anything: %+v", p)
	}
	// Switch-over: QEMU pauses the VM on hv1 and resumes it on hv2, which
	// announces it.
	if err := vm1.ns.SetDown("eth0"); err != nil {
		t.Fatal(err)
	}
	pc, err := vm1b.ns.PacketConn("eth0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	resumed := time.Now()
	if err := pc.WriteFrame(rarpAnnounce(vm1b.mac)); err != nil {
		t.Fatal(err)
	}
	assoc := waitBridgeVSI(t, lp, pre, 5*time.Second, "ASSOC with the M bit from hv2", func(v topo.VSIRecord) bool {
		return v.Port == h2.swPort && v.Mode == 3 && v.Status == 0x10 && identity(v)
	})
	h2.waitVSIs("associated on hv2", 5*time.Second, func(vs []api.VSI) bool {
		return len(vs) == 1 && vs[0].State == "associated" && vs[0].Migrated
	})
	t.Logf("VSI associated on hv2 %v after the VM's announce", time.Since(resumed).Round(time.Millisecond))
	// The source stops its QEMU: libvirt's status of the domain says its
	// outgoing migration is in the confirm phase.
	h1.writeDomStatus("paused", "migration", "migration out", "confirm3")
	r = h1.hookSeq(live, "web1", "stopped", "end", "-")
	if !strings.Contains(r.stdout, "migrated away") {
		t.Errorf("source stopped end said %q", r.stdout)
	}
	h1.dropDomStatus() // libvirt removes it before "release end"
	h1.hookSeq(live, "web1", "release", "end", "-")
	waitBridgeVSI(t, lp, mark, 5*time.Second, "DE-ASSOC with the S bit from hv1", func(v topo.VSIRecord) bool {
		return v.Port == h1.swPort && v.Mode == 4 && v.Status == 0x20 && identity(v)
	})
	if _, ok := h1.portOf(vm1.port); ok {
		t.Errorf("hv1 kept the VM's port after it left")
	}
	if p, ok := h2.portOf(vm1.port); !ok || p.Migration != "" {
		t.Errorf("hv2's port after the move: %+v (exists %v)", p, ok)
	}
	if vs := h1.mustCtl("-o", "json", "list-ports"); strings.Contains(vs, testDomain) {
		t.Errorf("hv1 has a port of the domain left:\n%s", vs)
	}
	vm1b.mustPing(vm2) // across the bridge now
	if assoc <= pre {
		t.Errorf("ASSOC (record %d) before PRE-ASSOC (%d)", assoc, pre)
	}

	// A failed migration back to hv1: its QEMU is started and stopped
	// again, hv2's VM runs on.
	if err := vm1.ns.SetUp("eth0"); err != nil { // the tap of hv1's incoming QEMU, silent
		t.Fatal(err)
	}
	mark = len(lp.ReceivedVSIs())
	h1.hookSeq(incoming, "web1", "migrate", "begin", "-")
	h1.hookSeq(live, "web1", "prepare", "begin", "-")
	h1.hookSeq(live, "web1", "start", "begin", "-")
	h1.writeDomStatus("paused", "migration", "migration in", "prepare")
	h1.hookSeq(live, "web1", "started", "begin", "-")
	waitBridgeVSI(t, lp, mark, 5*time.Second, "PRE-ASSOC from hv1", func(v topo.VSIRecord) bool {
		return v.Port == h1.swPort && v.Mode == 1 && identity(v)
	})
	h1.hookSeq(live, "web1", "stopped", "end", "-")
	h1.dropDomStatus()
	h1.hookSeq(live, "web1", "release", "end", "-")
	waitBridgeVSI(t, lp, mark, 5*time.Second, "a plain DE-ASSOC from hv1", func(v topo.VSIRecord) bool {
		return v.Port == h1.swPort && v.Mode == 4 && v.Status == 0 && identity(v)
	})
	if _, ok := h1.portOf(vm1.port); ok {
		t.Errorf("hv1 kept the port of the failed incoming migration")
	}
	time.Sleep(500 * time.Millisecond)
	for _, v := range lp.ReceivedVSIs()[mark:] {
		if v.Port == h2.swPort && v.Mode != 3 {
			t.Errorf("the source (hv2) sent %s during the failed migration", v)
		}
	}
	if vs := h2.waitVSIs("still associated on hv2", time.Second, func(vs []api.VSI) bool { return len(vs) == 1 }); vs[0].State != "associated" {
		t.Errorf("hv2's VSI after the failed migration: %+v", vs[0])
	}
	vm1b.mustPing(vm2)
}
