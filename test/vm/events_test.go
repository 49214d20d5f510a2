package vm_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/test/topo"
	"github.com/vswitch/vswitch/test/vm"
)

// waitPorts polls vswitchd's ports until ok holds (or fails the test after
// timeout, saying what) and returns them.
func (l *lab) waitPorts(what string, timeout time.Duration, ok func(map[string]api.Port) bool) map[string]api.Port {
	l.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ps := l.ports()
		if ok(ps) {
			return ps
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("%s: not within %v; ports %+v\nvswitchd log (tail):\n%s", what, timeout, ps, tailLines(l.daemon.Output(), 30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func (l *lab) libvirtStatus() api.LibvirtStatus {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := l.api.Status(ctx)
	if err != nil || st.Libvirt == nil {
		l.t.Fatalf("status: %+v, %v; want a libvirt part", st.Libvirt, err)
	}
	return *st.Libvirt
}

// vswitchd --libvirt against the test's private libvirtd, on two real TCG
// guests booted once for all the checks. The libvirtd has no hook at
// first: every port comes from the event follower.
//   - vswitchd started after the guests reconciles: both get their ports
//     (owned by their domains) and ping each other through the relay.
//   - The metadata for a second NIC of vm2 is set first (`virsh metadata
//     --live`: no NIC yet, no port, no error), then the NIC is hot-plugged
//     (`virsh attach-device --live`): its port comes, on VLAN 300, and the
//     guest pings a peer on VLAN 300 through it.
//   - `virsh metadata --live` moves the NIC to VLAN 301: the port follows
//     and the peer, still on 300, is out of reach until it moves too.
//   - `virsh detach-device --live`: the port goes, the others stay.
//   - `virsh destroy` of vm1 without a hook: the lifecycle event removes
//     its port.
//   - libvirtd restarts, now with README's hook: vswitchd reconnects and
//     reconciles, removing a port owned by a domain that does not exist
//     and keeping the peer's (added by vswctl, no owner); then destroying
//     vm2 with hook and follower both at work removes its port cleanly.
func TestLibvirtEvents(t *testing.T) {
	begin := time.Now()
	l := newLabWith(t, labOptions{noHook: true, daemonLate: true})
	vm1 := l.guest(1, `vlan="100"`)
	vm2 := l.guest(2, `vlan="100"`)
	guests := []*vm.Domain{vm1, vm2}
	uuids := map[*vm.Domain]string{}
	for _, d := range guests {
		if err := d.Start(); err != nil {
			t.Fatal(err)
		}
		u, err := d.UUID()
		if err != nil {
			t.Fatal(err)
		}
		uuids[d] = strings.TrimSpace(u)
	}
	tap1, tap2 := vm1.Spec.NICs[0].Tap, vm2.Spec.NICs[0].Tap

	t.Run("reconcile-at-start", func(t *testing.T) {
		start := time.Now()
		l.startDaemon("--libvirt", l.lv.URI)
		ps := l.waitPorts("the running guests' ports", 15*time.Second, func(ps map[string]api.Port) bool {
			_, a := ps[tap1]
			_, b := ps[tap2]
			return a && b
		})
		t.Logf("ports of the 2 running guests reconciled %.2f s after vswitchd started", time.Since(start).Seconds())
		for _, d := range guests {
			p := ps[d.Spec.NICs[0].Tap]
			if p.VLAN != 100 || p.Owner != uuids[d] || len(p.MACs) != 1 || p.MACs[0] != d.Spec.NICs[0].MAC {
				t.Errorf("%s's port %+v: want VLAN 100, its MAC, owner %s", d.Spec.Name, p, uuids[d])
			}
		}
		st := l.libvirtStatus()
		for deadline := time.Now().Add(5 * time.Second); st.Reconciled == "" && time.Now().Before(deadline); st = l.libvirtStatus() {
			time.Sleep(20 * time.Millisecond) // the reconcile's end is recorded just after its last port
		}
		if st.State != "connected" || st.URI != l.lv.URI || st.Domains != 2 || st.Reconciled == "" || st.Reconciles != 1 {
			t.Errorf("libvirt status %+v; want connected to %s, 2 domains reconciled", st, l.lv.URI)
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	var wg sync.WaitGroup
	for _, d := range guests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := d.WaitReady(bootTimeout); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	t.Run("reconciled-ports-forward", func(t *testing.T) {
		took, err := firstPing(vm1, "10.0.0.2", 60*time.Second)
		if err != nil {
			t.Fatalf("vm1 -> vm2 over the reconciled ports: %v", err)
		}
		t.Logf("vm1: first reply from vm2 %.1f s after virsh start", took.Seconds())
	})

	// The peer on VLAN 300: a veth whose hypervisor end is a vswitchd
	// port added as vswctl would (no owner), its other end in a namespace
	// of its own with 10.0.3.100.
	peerNS, err := l.tp.NewNS("peer")
	if err != nil {
		t.Fatal(err)
	}
	peerPort := l.tp.Ifname("pv")
	if err := topo.VethPair(l.hv, peerPort, peerNS, "eth0"); err != nil {
		t.Fatal(err)
	}
	if err := topo.AddrAdd(peerNS, "eth0", "10.0.3.100/24"); err != nil {
		t.Fatal(err)
	}
	peerMAC, err := peerNS.MAC("eth0")
	if err != nil {
		t.Fatal(err)
	}
	// Its MAC registered, as a VM's is: vswitchd delivers unknown
	// unicast to no port, and the peer's MAC must stay known when its
	// port changes VLAN.
	ctx := context.Background()
	if _, err := l.api.AddPort(ctx, api.PortSpec{Name: peerPort, VLAN: ptr(300), MACs: &[]string{peerMAC.String()}}); err != nil {
		t.Fatal(err)
	}
	hot := vm.NIC{MAC: "52:54:00:00:02:02", Tap: l.tp.Ifname("h2"), Port: `vlan="300"`}
	nics := append([]vm.NIC{vm2.Spec.NICs[0]}, hot)

	t.Run("hotplug", func(t *testing.T) {
		// Metadata first: it names a NIC that is not there yet.
		if err := vm2.SetPorts(nics); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond) // the event is handled in well under that
		if _, ok := l.ports()[hot.Tap]; ok {
			t.Fatalf("port %s exists before its NIC", hot.Tap)
		}
		if st := l.libvirtStatus(); st.Error != "" {
			t.Errorf("metadata naming a NIC not yet attached gave an error: %s", st.Error)
		}
		start := time.Now()
		if err := vm2.AttachNIC(hot); err != nil {
			t.Fatal(err)
		}
		ps := l.waitPorts("the hot-plugged NIC's port", 10*time.Second, func(ps map[string]api.Port) bool {
			return ps[hot.Tap].State == "up"
		})
		t.Logf("hot-plugged NIC's port up %.2f s after virsh attach-device", time.Since(start).Seconds())
		if p := ps[hot.Tap]; p.VLAN != 300 || p.Owner != uuids[vm2] || len(p.MACs) != 1 || p.MACs[0] != hot.MAC {
			t.Errorf("hot-plugged port %+v: want VLAN 300, MAC %s, owner %s", p, hot.MAC, uuids[vm2])
		}
		// The guest brings its new NIC (eth1) up.
		out, rc, err := vm2.Run("i=0; while [ ! -e /sys/class/net/eth1 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; "+
			"ip link set eth1 up && ip addr add 10.0.3.2/24 dev eth1 && cat /sys/class/net/eth1/address", 30*time.Second)
		if err != nil || rc != 0 || !strings.Contains(out, hot.MAC) {
			t.Fatalf("configuring eth1 in vm2: rc %d, %v: %q", rc, err, out)
		}
		if _, err := firstPing(vm2, "10.0.3.100", 30*time.Second); err != nil {
			t.Fatalf("vm2 -> peer over the hot-plugged NIC (VLAN 300): %v", err)
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	t.Run("metadata-live-change", func(t *testing.T) {
		nics[1].Port = `vlan="301" pcp="6"`
		if err := vm2.SetPorts(nics); err != nil {
			t.Fatal(err)
		}
		l.waitPorts("the port following the metadata", 10*time.Second, func(ps map[string]api.Port) bool {
			p := ps[hot.Tap]
			return p.VLAN == 301 && p.PCP == 6
		})
		if r, err := vm2.Ping("10.0.3.100", 2, 1); err != nil || r.Received != 0 {
			t.Errorf("vm2 (now VLAN 301) -> peer (VLAN 300): %+v, %v; want no reply", r, err)
		}
		if _, err := l.api.UpdatePort(ctx, peerPort, api.PortSpec{VLAN: ptr(301)}); err != nil {
			t.Fatal(err)
		}
		if r, err := vm2.Ping("10.0.3.100", 2, 2); err != nil || r.Received == 0 {
			t.Errorf("vm2 -> peer, both on VLAN 301: %+v, %v; want replies", r, err)
		}
	})

	t.Run("detach", func(t *testing.T) {
		start := time.Now()
		if err := vm2.DetachNIC(hot); err != nil {
			t.Fatal(err)
		}
		ps := l.waitPorts("the detached NIC's port removed", 15*time.Second, func(ps map[string]api.Port) bool {
			_, ok := ps[hot.Tap]
			return !ok
		})
		t.Logf("port removed %.2f s after virsh detach-device", time.Since(start).Seconds())
		for _, n := range []string{tap1, tap2, peerPort} {
			if _, ok := ps[n]; !ok {
				t.Errorf("detaching vm2's second NIC removed port %s too", n)
			}
		}
	})

	t.Run("stop-without-hook", func(t *testing.T) {
		if err := vm1.Destroy(); err != nil {
			t.Fatal(err)
		}
		ps := l.waitPorts("vm1's port removed at its stop", 10*time.Second, func(ps map[string]api.Port) bool {
			_, ok := ps[tap1]
			return !ok
		})
		if _, ok := ps[tap2]; !ok {
			t.Errorf("vm1's stop removed vm2's port")
		}
	})

	t.Run("libvirtd-restart-reconciles", func(t *testing.T) {
		// A port whose owner is a domain libvirtd does not know: removed
		// at the reconnection.
		stale := l.tp.Ifname("st")
		if _, err := l.api.AddPort(ctx, api.PortSpec{Name: stale, VLAN: ptr(100), Owner: ptr("0f0f0f0f-0000-4000-8000-0000000000ff")}); err != nil {
			t.Fatal(err)
		}
		before := l.libvirtStatus()
		// libvirtd comes back with the installed hook: from now on both
		// paths are at work, as on a hypervisor that runs both.
		hook := filepath.Join(l.lv.Dir, vm.HookPath)
		if err := os.MkdirAll(filepath.Dir(hook), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(hook, []byte(vm.HookScript(vswctlBin, l.sock)), 0o755); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := l.lv.Restart(); err != nil {
			t.Fatal(err)
		}
		ps := l.waitPorts("the stale port removed after the reconnection", 30*time.Second, func(ps map[string]api.Port) bool {
			_, ok := ps[stale]
			return !ok && l.libvirtStatus().Reconciles > before.Reconciles
		})
		t.Logf("reconnected and reconciled %.1f s after libvirtd's restart began", time.Since(start).Seconds())
		for _, n := range []string{tap2, peerPort} {
			if _, ok := ps[n]; !ok {
				t.Errorf("port %s gone after the reconnection", n)
			}
		}
		if st := l.libvirtStatus(); st.State != "connected" || st.Reconciles != before.Reconciles+1 || st.Error != "" {
			t.Errorf("libvirt status after the restart %+v (before %+v); want connected again, reconciled once more, no error", st, before)
		}
	})

	t.Run("stop-with-hook-and-follower", func(t *testing.T) {
		if err := vm2.Destroy(); err != nil {
			t.Fatal(err)
		}
		// The hook's "stopped end" removed it before destroy returned.
		ps := l.ports()
		if _, ok := ps[tap2]; ok {
			t.Errorf("vm2's port still there after virsh destroy with the hook")
		}
		if _, ok := ps[peerPort]; !ok {
			t.Errorf("the peer's port (no owner) went with vm2")
		}
		time.Sleep(500 * time.Millisecond) // the follower's stop event
		if strings.Contains(l.daemon.Output(), "level=WARN msg=\"sync domain") {
			t.Errorf("hook and follower got in each other's way:\n%s", tailLines(l.daemon.Output(), 30))
		}
	})
	st := l.libvirtStatus()
	t.Logf("libvirt status at the end: %+v", st)
	if st.Events == 0 {
		t.Errorf("no libvirt event counted")
	}
	t.Logf("TestLibvirtEvents took %.1f s", time.Since(begin).Seconds())
}

func ptr[T any](v T) *T { return &v }
