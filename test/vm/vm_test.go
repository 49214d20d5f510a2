package vm_test

import (
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/test/topo"
	"github.com/vswitch/vswitch/test/vm"
)

const bootTimeout = 120 * time.Second

// firstPing pings dst from d once a second until a reply comes and returns
// the time since d's start: the guest's boot-to-ping time.
func firstPing(d *vm.Domain, dst string, timeout time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(timeout)
	for {
		r, err := d.Ping(dst, 1, 1)
		if err == nil && r.Received == 1 {
			return time.Since(d.Started), nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = &pingError{r}
			}
			return 0, err
		}
	}
}

type pingError struct{ r vm.PingResult }

func (e *pingError) Error() string { return "no reply: " + e.r.Output }

// wireTag returns the outer tag of the first frame seen on the wire from
// mac (either direction: the relay sends it back out as it came).
func (l *lab) wireTag(mac net.HardwareAddr, timeout time.Duration) (tci uint16, tagged bool, err error) {
	fr, err := l.wire.WaitFor(timeout, func(f topo.Frame) bool {
		return len(f.Data) >= 14 && slices.Equal(f.Data[6:12], mac)
	})
	if err != nil {
		return 0, false, err
	}
	tpid, tci, ok := topo.OuterTag(fr.Data)
	if ok && tpid != topo.TPID8021Q {
		return 0, false, nil
	}
	return tci, ok, nil
}

// Three real TCG guests under a real libvirtd, with the installed hook, on one
// hypervisor whose uplink goes to a hairpin bridge: the hook gives each
// NIC its port from the domain metadata at "start begin"; vm1 and vm2 on
// VLAN 100 ping each other through vswitchd and the relay, tagged on the
// wire (vm1 with the PCP its metadata sets); vm3 on VLAN 200 reaches
// neither; a libvirtd restart keeps the ports and the traffic; `virsh
// destroy` removes the destroyed guest's port and only that one.
func TestVMs(t *testing.T) {
	begin := time.Now()
	l := newLab(t)
	t.Logf("lab (namespaces, bridge, vswitchd, libvirtd) up in %.1f s; image: kernel %s, initramfs %s",
		time.Since(begin).Seconds(), l.img.Kernel, l.img.Initrd)
	vm1 := l.guest(1, `vlan="100" pcp="5"`)
	vm2 := l.guest(2, `vlan="100"`)
	vm3 := l.guest(3, `vlan="200"`)
	guests := []*vm.Domain{vm1, vm2, vm3}
	for _, d := range guests {
		if err := d.Start(); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: virsh start returned after %v", d.Spec.Name, time.Since(d.Started).Round(time.Millisecond))
	}

	t.Run("ports-from-metadata", func(t *testing.T) {
		// The hook ran at "start begin", before `virsh start` returned.
		ps := l.ports()
		want := map[string]struct{ vlan, pcp int }{
			vm1.Spec.NICs[0].Tap: {100, 5}, vm2.Spec.NICs[0].Tap: {100, 0}, vm3.Spec.NICs[0].Tap: {200, 0},
		}
		if len(ps) != len(want) {
			t.Errorf("vswitchd has %d ports, want %d: %+v", len(ps), len(want), ps)
		}
		for _, d := range guests {
			nic := d.Spec.NICs[0]
			p, ok := ps[nic.Tap]
			if !ok {
				t.Errorf("no port %s for %s", nic.Tap, d.Spec.Name)
				continue
			}
			w := want[nic.Tap]
			if p.VLAN != w.vlan || p.PCP != w.pcp || !slices.Equal(p.MACs, []string{nic.MAC}) || p.State != "up" {
				t.Errorf("port %s: vlan %d pcp %d macs %v state %s; want vlan %d pcp %d macs [%s] up",
					nic.Tap, p.VLAN, p.PCP, p.MACs, p.State, w.vlan, w.pcp, nic.MAC)
			}
		}
	})

	t.Run("hook-failure-fails-start", func(t *testing.T) {
		// The hook is installed as qemu.d/vswitch (vm.HookPath), where
		// libvirt runs it after hooks/qemu: its failure at "start begin"
		// still fails the start, with its message, and leaves no port.
		bad := l.guest(4, `vlan="5000"`)
		err := bad.Start()
		if err == nil || !strings.Contains(err.Error(), "5000") {
			t.Errorf("virsh start of a domain with VLAN 5000: %v; want it refused with the hook's message", err)
		}
		if p, ok := l.ports()[bad.Spec.NICs[0].Tap]; ok {
			t.Errorf("port %+v added for the refused domain", p)
		}
	})

	// The guests boot at once (TCG, one vCPU each).
	var wg sync.WaitGroup
	for _, d := range guests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			took, line, err := d.WaitReady(bootTimeout)
			if err != nil {
				t.Error(err)
				return
			}
			t.Logf("%s: ready %.1f s after virsh start (%s)", d.Spec.Name, took.Seconds(), line)
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	t.Run("vlan100-ping", func(t *testing.T) {
		var wg sync.WaitGroup
		for _, p := range []struct {
			d   *vm.Domain
			dst string
		}{{vm1, "10.0.0.2"}, {vm2, "10.0.0.1"}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				took, err := firstPing(p.d, p.dst, 60*time.Second)
				if err != nil {
					t.Errorf("%s -> %s: %v", p.d.Spec.Name, p.dst, err)
					return
				}
				t.Logf("%s: first reply from %s %.1f s after virsh start (boot-to-ping)", p.d.Spec.Name, p.dst, took.Seconds())
			}()
		}
		wg.Wait()
		r, err := vm1.Ping("10.0.0.2", 3, 2)
		if err != nil || r.Received != 3 {
			t.Errorf("vm1 -> vm2 on VLAN 100: %+v, %v; want 3 of 3", r, err)
		}
	})

	t.Run("pcp-on-wire", func(t *testing.T) {
		// Frames of vm1 carry VID 100 with PCP 5 from its metadata; vm2's,
		// whose metadata sets none, PCP 0.
		for _, c := range []struct {
			d        *vm.Domain
			vid, pcp uint16
		}{{vm1, 100, 5}, {vm2, 100, 0}} {
			mac, _ := net.ParseMAC(c.d.Spec.NICs[0].MAC)
			tci, tagged, err := l.wireTag(mac, 5*time.Second)
			if err != nil {
				t.Errorf("%s: no frame from %s on the wire: %v", c.d.Spec.Name, mac, err)
				continue
			}
			if !tagged || tci&0xfff != c.vid || tci>>13 != c.pcp {
				t.Errorf("%s: frame on the wire tagged %v, VID %d, PCP %d; want VID %d, PCP %d",
					c.d.Spec.Name, tagged, tci&0xfff, tci>>13, c.vid, c.pcp)
			}
		}
	})

	t.Run("vlan200-isolated", func(t *testing.T) {
		for _, c := range []struct {
			d   *vm.Domain
			dst string
		}{{vm3, "10.0.0.1"}, {vm3, "10.0.0.2"}, {vm1, "10.0.0.3"}} {
			r, err := c.d.Ping(c.dst, 2, 1)
			if err != nil {
				t.Errorf("%s -> %s: %v", c.d.Spec.Name, c.dst, err)
			} else if r.Received != 0 {
				t.Errorf("%s -> %s across VLANs 100/200: %d of %d answered, want none", c.d.Spec.Name, c.dst, r.Received, r.Sent)
			}
		}
		// vm3 did send (its ARP requests): they are on the wire in VLAN 200.
		mac, _ := net.ParseMAC(vm3.Spec.NICs[0].MAC)
		tci, tagged, err := l.wireTag(mac, 5*time.Second)
		if err != nil || !tagged || tci&0xfff != 200 {
			t.Errorf("vm3's frames on the wire: tagged %v VID %d (%v); want VID 200", tagged, tci&0xfff, err)
		}
	})

	t.Run("libvirtd-restart-keeps-ports", func(t *testing.T) {
		before := l.ports()
		pids := map[string]int{}
		for _, d := range guests {
			pid, err := d.PID()
			if err != nil {
				t.Fatal(err)
			}
			pids[d.Spec.Name] = pid
		}
		start := time.Now()
		if err := l.lv.Restart(); err != nil {
			t.Fatal(err)
		}
		t.Logf("libvirtd restarted in %.1f s", time.Since(start).Seconds())
		for _, d := range guests {
			st, err := d.State()
			pid, perr := d.PID()
			if err != nil || st != "running" || perr != nil || pid != pids[d.Spec.Name] {
				t.Errorf("%s after the restart: state %q (%v), QEMU pid %d (%v), want running, pid %d",
					d.Spec.Name, st, err, pid, perr, pids[d.Spec.Name])
			}
		}
		after := l.ports()
		if !samePorts(before, after) {
			t.Errorf("ports changed across the libvirtd restart:\nbefore %+v\nafter  %+v", before, after)
		}
		if r, err := vm2.Ping("10.0.0.1", 3, 2); err != nil || r.Received != 3 {
			t.Errorf("vm2 -> vm1 after the libvirtd restart: %+v, %v; want 3 of 3", r, err)
		}
	})

	t.Run("destroy-removes-port", func(t *testing.T) {
		if err := vm2.Destroy(); err != nil {
			t.Fatal(err)
		}
		// The hook's "stopped end"/"release end" ran before destroy
		// returned.
		ps := l.ports()
		if _, ok := ps[vm2.Spec.NICs[0].Tap]; ok {
			t.Errorf("vm2's port %s still there after virsh destroy: %+v", vm2.Spec.NICs[0].Tap, ps)
		}
		for _, d := range []*vm.Domain{vm1, vm3} {
			if _, ok := ps[d.Spec.NICs[0].Tap]; !ok {
				t.Errorf("destroying vm2 removed %s's port %s too", d.Spec.Name, d.Spec.NICs[0].Tap)
			}
		}
		if _, err := l.hv.Link(vm2.Spec.NICs[0].Tap); err == nil {
			t.Errorf("vm2's tap %s still exists after virsh destroy", vm2.Spec.NICs[0].Tap)
		}
		if r, err := vm1.Ping("10.0.0.2", 2, 1); err != nil || r.Received != 0 {
			t.Errorf("vm1 -> destroyed vm2: %+v, %v; want no reply", r, err)
		}
	})
	t.Logf("TestVMs took %.1f s", time.Since(begin).Seconds())
}

// samePorts compares what a restart must not change: names, VLAN, PCP,
// MACs, state.
func samePorts(a, b map[string]api.Port) bool {
	if len(a) != len(b) {
		return false
	}
	for n, p := range a {
		q, ok := b[n]
		if !ok || p.VLAN != q.VLAN || p.PCP != q.PCP || !slices.Equal(p.MACs, q.MACs) || p.State != q.State {
			return false
		}
	}
	return true
}
