package vm_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/vswitch/vswitch/internal/uuid"
	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/test/topo"
	"github.com/vswitch/vswitch/test/vm"
)

// migHost is one hypervisor of the migration test: a namespace with an
// uplink to the bridge, vswitchd and a private libvirtd with the hook.
type migHost struct {
	name   string
	ns     *topo.NS
	swPort string
	sock   string
	api    *api.Client
	lv     *vm.Libvirtd
	d      *topo.Proc // vswitchd
}

// startHost starts vswitchd and libvirtd in h's namespace.
func startHost(t *testing.T, tp *topo.Topo, h *migHost, dir, hostUUID string) {
	t.Helper()
	h.sock = filepath.Join(dir, h.name+".sock")
	d, err := h.ns.Start(vswitchdBin, "--uplink", "uplink", "--datapath", "afpacket", "--lldp-interval", "1s",
		"--state", filepath.Join(dir, h.name+".db"), "--socket", h.sock, "--log-level", "debug", "--uplink-queues", "1")
	if err != nil {
		t.Fatal(err)
	}
	h.d = d
	h.api = api.NewClient(h.sock)
	tp.Defer("close API client of "+h.name, func() error { h.api.Close(); return nil })
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := h.api.Status(ctx)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: vswitchd API not answering: %v\n%s", h.name, err, d.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// migration_address: the namespaces have no IPv6, and the incoming
	// QEMU must listen where the source's reaches it.
	h.lv, err = vm.StartLibvirtdWith(tp, h.ns, vm.LibvirtdOptions{Hook: vm.HookScript(vswctlBin, h.sock), HostUUID: hostUUID,
		QEMUConf: "migration_address = \"0.0.0.0\"\n"})
	if err != nil {
		t.Fatal(err)
	}
}

func (h *migHost) ports(t *testing.T) map[string]api.Port {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ps, err := h.api.ListPorts(ctx)
	if err != nil {
		t.Fatalf("%s: list ports: %v", h.name, err)
	}
	m := map[string]api.Port{}
	for _, p := range ps {
		m[p.Name] = p
	}
	return m
}

func (h *migHost) waitVSI(t *testing.T, what string, timeout time.Duration, ok func(api.VSI) bool) api.VSI {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		vs, err := h.api.VSIs(ctx)
		cancel()
		if err == nil && len(vs) == 1 && ok(vs[0]) {
			return vs[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s not reached in %v: %+v (%v)", h.name, what, timeout, vs, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A running TCG guest moves between two hypervisors with `virsh migrate
// --live`, each with its own libvirtd (and host UUID), vswitchd and the
// hook, on one hairpin bridge with lldpad as the 802.1Qbg bridge (VDP is
// checked when lldpad is installed). The guest pings a VM on the source's
// host 20 times a second throughout. What libvirt's hook calls do, for
// real: the destination's port is added incoming and pre-associated before
// its QEMU starts, the guest's announcement when it resumes associates it
// with the M bit, the source's stop (which libvirt's status file shows to
// end the outgoing migration) de-associates with the S bit and removes
// the port. The frames lost during the move are reported.
func TestLiveMigration(t *testing.T) {
	begin := time.Now()
	img := vm.Require(t)
	if buildErr != nil {
		t.Fatalf("vm: %v", buildErr)
	}
	tp := topo.New(t)
	sw, err := tp.NewNS("sw")
	if err != nil {
		t.Fatal(err)
	}
	hosts := []*migHost{{name: "hv1", swPort: "p1"}, {name: "hv2", swPort: "p2"}}
	var ports []topo.Port
	for _, h := range hosts {
		if h.ns, err = tp.NewNS(h.name); err != nil {
			t.Fatal(err)
		}
		if err := topo.VethPair(h.ns, "uplink", sw, h.swPort); err != nil {
			t.Fatal(err)
		}
		ports = append(ports, topo.Port{Name: h.swPort, Hairpin: true})
	}
	if err := topo.Bridge(sw, "br0", ports...); err != nil {
		t.Fatal(err)
	}
	// The management network the memory goes over.
	if err := topo.VethPair(hosts[0].ns, "mig", hosts[1].ns, "mig"); err != nil {
		t.Fatal(err)
	}
	for i, h := range hosts {
		if err := topo.AddrAdd(h.ns, "mig", fmt.Sprintf("10.99.0.%d/24", i+1)); err != nil {
			t.Fatal(err)
		}
	}
	dir, err := os.MkdirTemp("", "vsvm-mig-")
	if err != nil {
		t.Fatal(err)
	}
	tp.Defer("remove "+dir, func() error { return os.RemoveAll(dir) })
	var lp *topo.LLDPAD
	if err := topo.BridgeSTP(sw, "br0", true); err != nil {
		t.Fatal(err)
	}
	lp, err = topo.StartLLDPAD(sw, dir)
	switch {
	case errors.Is(err, topo.ErrNoLLDPAD):
		t.Logf("%v: VDP not checked", err)
		lp = nil
	case err != nil:
		t.Fatal(err)
	default:
		for _, h := range hosts {
			if err := lp.EVBBridge(h.swPort, true); err != nil {
				t.Fatal(err)
			}
		}
		_ = lp.Stop()
		if lp, err = topo.StartLLDPAD(sw, dir); err != nil {
			t.Fatal(err)
		}
		tp.Defer("lldpad's VSIs", func() error {
			if t.Failed() {
				for _, v := range lp.ReceivedVSIs() {
					t.Logf("lldpad received %s", v)
				}
			}
			return nil
		})
	}
	for i, h := range hosts {
		startHost(t, tp, h, dir, fmt.Sprintf("6f1d0c6e-5a8b-4d0e-9c3a-00000000000%d", i+1))
	}
	src, dst := hosts[0], hosts[1]
	// The peer the guest pings: a namespace VM on the source's host.
	peer, err := tp.NewNS("peer")
	if err != nil {
		t.Fatal(err)
	}
	peerTap := tp.Ifname("pe")
	if err := topo.VethPair(src.ns, peerTap, peer, "eth0"); err != nil {
		t.Fatal(err)
	}
	if err := peer.SetMAC("eth0", "52:54:00:00:02:02"); err != nil {
		t.Fatal(err)
	}
	if err := peer.SetUp("eth0"); err != nil {
		t.Fatal(err)
	}
	if err := topo.AddrAdd(peer, "eth0", "10.0.0.2/24"); err != nil {
		t.Fatal(err)
	}
	vid := 100
	ctx := context.Background()
	if _, err := src.api.AddPort(ctx, api.PortSpec{Name: peerTap, VLAN: &vid}); err != nil {
		t.Fatal(err)
	}
	if lp != nil {
		for _, h := range hosts {
			deadline := time.Now().Add(20 * time.Second)
			for {
				st, err := h.api.Status(ctx)
				if err == nil && st.Relay != nil && st.Relay.State == "granted" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: relay not granted by lldpad: %+v (%v)", h.name, st.Relay, err)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	t.Logf("lab up in %.1f s", time.Since(begin).Seconds())

	tap := tp.Ifname("v1")
	const mac = "52:54:00:00:01:01"
	d, err := src.lv.Define(vm.DomainSpec{Name: tp.Name("vm1"), Image: img, IP: "10.0.0.1/24",
		NICs: []vm.NIC{{MAC: mac, Tap: tap, Port: `vlan="100" vsi-type="1193047" vsi-type-version="2" vsi-manager="12"`}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.WaitReady(bootTimeout); err != nil {
		t.Fatal(err)
	}
	if _, err := firstPing(d, "10.0.0.2", 60*time.Second); err != nil {
		t.Fatalf("guest -> peer before the move: %v", err)
	}
	domUUID, err := d.UUID()
	if err != nil {
		t.Fatal(err)
	}
	dom, err := uuid.Parse(domUUID)
	if err != nil {
		t.Fatal(err)
	}
	vsiid := uuid.NameBased(dom, mac).String()
	if lp != nil {
		src.waitVSI(t, "associated on the source", 15*time.Second, func(v api.VSI) bool { return v.State == "associated" && v.UUID == vsiid })
	}
	mark := 0
	if lp != nil {
		mark = len(lp.ReceivedVSIs())
	}

	// The guest pings throughout: 20 a second for 15 s, its summary in a
	// file of its own (the console moves with it).
	const count, interval = 300, 50 * time.Millisecond
	capt, err := peer.Capture("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if _, rc, err := d.Run(fmt.Sprintf("(ping -q -c %d -i %.2f 10.0.0.2 > /ping.out 2>&1 &)", count, interval.Seconds()), 10*time.Second); err != nil || rc != 0 {
		t.Fatalf("start the guest's ping: rc %d, %v", rc, err)
	}
	pingStart := time.Now()
	time.Sleep(2 * time.Second)

	moved, took, err := d.MigrateTo(dst.lv, "tcp://10.99.0.2")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("virsh migrate --live took %v", took.Round(time.Millisecond))
	if st, err := moved.State(); err != nil || st != "running" {
		t.Errorf("on the destination: %q, %v; want running", st, err)
	}
	if st, err := d.State(); err != nil || st != "shut off" {
		t.Errorf("on the source: %q, %v; want shut off", st, err)
	}

	// The ports: gone on the source, on the destination associated (the
	// guest announced itself).
	if _, ok := src.ports(t)[tap]; ok {
		t.Errorf("the source kept the guest's port %s", tap)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, ok := dst.ports(t)[tap]
		if ok && p.Migration == "" && p.State == "up" && p.Owner == dom.String() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("destination port %s: %+v (exists %v); want up, owned by the domain, no longer incoming", tap, p, ok)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if lp != nil {
		v := dst.waitVSI(t, "associated with the M bit on the destination", 10*time.Second, func(v api.VSI) bool {
			return v.State == "associated" && v.Migrated
		})
		if v.UUID != vsiid || v.TypeID != 1193047 || v.TypeVer != 2 || v.MgrID != "12" {
			t.Errorf("destination VSI %+v, want VSIID %s (the same as on the source), type 1193047 version 2 manager 12", v, vsiid)
		}
		same := func(r topo.VSIRecord) bool {
			return r.ID == vsiid && r.MgrID == "12" && r.TypeID == 1193047 && r.Version == 2
		}
		pre, err := lp.WaitVSI(mark, 5*time.Second, func(r topo.VSIRecord) bool { return r.Port == dst.swPort && r.Mode == 1 && same(r) })
		if err != nil {
			t.Errorf("PRE-ASSOC from the destination: %v", err)
		}
		if _, err := lp.WaitVSI(pre, 5*time.Second, func(r topo.VSIRecord) bool {
			return r.Port == dst.swPort && r.Mode == 3 && r.Status == 0x10 && same(r)
		}); err != nil {
			t.Errorf("ASSOC with the M bit from the destination: %v", err)
		}
		if _, err := lp.WaitVSI(mark, 5*time.Second, func(r topo.VSIRecord) bool {
			return r.Port == src.swPort && r.Mode == 4 && r.Status == 0x20 && same(r)
		}); err != nil {
			t.Errorf("DE-ASSOC with the S bit from the source (libvirt's status file at stopped end): %v", err)
		}
	}

	// Frames lost: the guest's own count, and the echo requests the peer
	// saw (their sequence numbers show the gap and how long it lasted).
	// The guest's clock stood still while it was paused, and a TCG guest
	// keeps its interval loosely: wait for its summary.
	var m []string
	summary := regexp.MustCompile(`(\d+) packets transmitted, (\d+) packets received`)
	for deadline := time.Now().Add(90 * time.Second); m == nil; {
		out, _, err := moved.Run("cat /ping.out", 20*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if m = summary.FindStringSubmatch(out); m == nil && time.Now().After(deadline) {
			t.Fatalf("the guest's ping did not finish %v after it began: %q", time.Since(pingStart).Round(time.Second), out)
		}
		time.Sleep(time.Second)
	}
	frames := capt.Stop()
	sent, got := atoi(m[1]), atoi(m[2])
	seqs, gap, gapAt := echoGap(frames, "10.0.0.1")
	t.Logf("during the move: the guest's ping lost %d of %d (echo every %v); the peer saw %d echo requests, the longest gap %v (%d requests missing)",
		sent-got, sent, interval, seqs, gap.Round(time.Millisecond), gapAt)
	if got == 0 || sent-got > sent/2 {
		t.Errorf("the guest's ping: %d of %d answered", got, sent)
	}
	if r, err := moved.Ping("10.0.0.2", 3, 2); err != nil || r.Received != 3 {
		t.Errorf("guest -> peer after the move: %+v, %v; want 3 of 3", r, err)
	}
	t.Logf("TestLiveMigration took %.1f s", time.Since(begin).Seconds())
}

// echoGap reads the ICMP echo requests from src among frames: how many,
// and the longest silence between two of them with the number of
// sequence numbers missing there.
func echoGap(frames []topo.Frame, src string) (n int, gap time.Duration, missing int) {
	var last time.Time
	lastSeq := -1
	for _, f := range frames {
		b := f.Data
		if len(b) < 14+20+8 || binary.BigEndian.Uint16(b[12:]) != 0x0800 {
			continue
		}
		ip := b[14:]
		ihl := int(ip[0]&0x0f) * 4
		if ip[9] != 1 || len(ip) < ihl+8 || fmt.Sprintf("%d.%d.%d.%d", ip[12], ip[13], ip[14], ip[15]) != src || ip[ihl] != 8 {
			continue
		}
		seq := int(binary.BigEndian.Uint16(ip[ihl+6:]))
		n++
		if !last.IsZero() && f.Time.Sub(last) > gap {
			gap, missing = f.Time.Sub(last), seq-lastSeq-1
		}
		last, lastSeq = f.Time, seq
	}
	return n, gap, missing
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }
