package datapath_test

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vswitch/vswitch/pkg/backend/queuetest"
	"github.com/vswitch/vswitch/pkg/datapath"
	"github.com/vswitch/vswitch/pkg/port"
	"github.com/vswitch/vswitch/pkg/vlan"
)

var (
	mac1  = net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}
	mac2  = net.HardwareAddr{0x52, 0x54, 0, 0, 0, 2}
	mac3  = net.HardwareAddr{0x52, 0x54, 0, 0, 0, 3}
	macR  = net.HardwareAddr{0x52, 0x54, 0, 0, 0, 0x99} // remote host behind the uplink
	bcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
)

func eth(dst, src net.HardwareAddr, tags ...vlan.Tag) []byte {
	b := append(append([]byte{}, dst...), src...)
	for _, t := range tags {
		b = binary.BigEndian.AppendUint16(b, t.TPID)
		b = binary.BigEndian.AppendUint16(b, t.TCI)
	}
	b = binary.BigEndian.AppendUint16(b, 0x0800)
	return append(b, make([]byte, 46)...)
}

func ctag(pcp uint8, vid uint16) vlan.Tag {
	return vlan.Tag{TPID: vlan.TPIDCTag, TCI: vlan.MakeTCI(pcp, false, vid)}
}

type rig struct {
	t   *testing.T
	be  *queuetest.Backend
	sw  *datapath.Switch
	ctl chan []byte
}

func newRig(t *testing.T, mode datapath.Mode, ports ...port.Config) *rig {
	t.Helper()
	r := &rig{t: t, be: queuetest.New(), ctl: make(chan []byte, 16)}
	sw, err := datapath.New(datapath.Config{Uplink: "up0", Mode: mode, Backend: r.be, Control: func(f []byte) bool {
		select {
		case r.ctl <- append([]byte(nil), f...):
			return true
		default:
			return false
		}
	}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := sw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sw.Stop)
	r.sw = sw
	for _, p := range ports {
		if err := sw.AddPort(p); err != nil {
			t.Fatal(err)
		}
		if err := sw.Attach(p.Name); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func (r *rig) portDrops(name string) map[string]uint64 {
	for _, p := range r.sw.Ports() {
		if p.Config.Name == name {
			return p.Counters.Drops
		}
	}
	r.t.Fatalf("no port %s", name)
	return nil
}

// settle waits for pipelines to consume injected frames.
func settle() { time.Sleep(30 * time.Millisecond) }

func access(name string, vid uint16, pcp uint8, macs ...net.HardwareAddr) port.Config {
	return port.Config{Name: name, VLAN: vid, PCP: pcp, MACs: macs}
}

func TestVMToUplinkPushesTag(t *testing.T) {
	svc := access("vnet2", 200, 0)
	svc.SVID = 30
	r := newRig(t, datapath.ModeVEPA, access("vnet1", 100, 5), svc)
	up := r.be.Iface("up0")

	in := eth(macR, mac1)
	r.be.Iface("vnet1").Inject(in)
	got := up.Wait(1, time.Second)
	if want := eth(macR, mac1, ctag(5, 100)); len(got) != 1 || !bytes.Equal(got[0], want) {
		t.Fatalf("uplink got %x\nwant %x", got, want)
	}
	r.be.Iface("vnet2").Inject(eth(macR, mac2))
	got = up.Wait(1, time.Second)
	want := eth(macR, mac2, vlan.Tag{TPID: vlan.TPIDSTag, TCI: 30}, ctag(0, 200))
	if len(got) != 1 || !bytes.Equal(got[0], want) {
		t.Fatalf("S-channel: uplink got %x\nwant %x", got, want)
	}
}

func TestVMToUplinkDrops(t *testing.T) {
	r := newRig(t, datapath.ModeVEPA, access("vnet1", 100, 0, mac1))
	vm := r.be.Iface("vnet1")
	three := eth(macR, mac1, ctag(0, 1), ctag(0, 2), ctag(0, 3))
	cases := []struct {
		frame  []byte
		reason string
	}{
		{make([]byte, 10), "malformed"},
		{append(eth(macR, mac1), make([]byte, 1600)...), "malformed"},
		{three, "malformed"},
		{eth(macR, mac1, ctag(0, 100)), "tagged_on_access"},
		{eth(macR, net.HardwareAddr{1, 0, 0x5e, 0, 0, 1}), "bad_src"},
		{eth(macR, net.HardwareAddr{0, 0, 0, 0, 0, 0}), "bad_src"},
		{eth(macR, mac2), "spoofed_src"},
		{eth(net.HardwareAddr{0x01, 0x80, 0xc2, 0, 0, 0x0e}, mac1), "link_local"},
	}
	want := map[string]uint64{}
	for _, c := range cases {
		vm.Inject(c.frame)
		want[c.reason]++
	}
	vm.Inject(eth(macR, mac1)) // one good frame
	if got := r.be.Iface("up0").Wait(1, time.Second); len(got) != 1 {
		t.Fatalf("uplink got %d frames, want only the good one", len(got))
	}
	settle()
	drops := r.portDrops("vnet1")
	for k, v := range want {
		if drops[k] != v {
			t.Errorf("drops[%s] = %d, want %d (all: %v)", k, drops[k], v, drops)
		}
	}
}

func TestTrunk(t *testing.T) {
	tr, _ := vlan.ParseVIDSet("10,20-30")
	r := newRig(t, datapath.ModeVEPA, port.Config{Name: "vnet1", Trunk: tr, NativeVLAN: 40})
	vm, up := r.be.Iface("vnet1"), r.be.Iface("up0")
	vm.Inject(eth(macR, mac1, ctag(3, 25)), eth(macR, mac1, ctag(0, 31)), eth(macR, mac1))
	got := up.Wait(2, time.Second)
	if len(got) != 2 || !bytes.Equal(got[0], eth(macR, mac1, ctag(3, 25))) || !bytes.Equal(got[1], eth(macR, mac1, ctag(0, 40))) {
		t.Fatalf("trunk uplink frames %x", got)
	}
	settle()
	if d := r.portDrops("vnet1")["vlan_not_allowed"]; d != 1 {
		t.Fatalf("vlan_not_allowed = %d", d)
	}
	// uplink -> trunk: tagged VID keeps its tag, native VID arrives untagged
	up.Inject(eth(bcast, macR, ctag(2, 20)), eth(mac1, macR, ctag(0, 40)))
	got = vm.Wait(2, time.Second)
	if len(got) != 2 || !bytes.Equal(got[0], eth(bcast, macR, ctag(2, 20))) || !bytes.Equal(got[1], eth(mac1, macR)) {
		t.Fatalf("trunk port got %x", got)
	}
}

func TestUplinkToVM(t *testing.T) {
	r := newRig(t, datapath.ModeVEPA, access("vnet1", 100, 0), access("vnet2", 100, 0), access("vnet3", 200, 0))
	vm1, vm2, vm3, up := r.be.Iface("vnet1"), r.be.Iface("vnet2"), r.be.Iface("vnet3"), r.be.Iface("up0")
	// learn mac1 on vnet1, mac2 on vnet2
	vm1.Inject(eth(macR, mac1))
	vm2.Inject(eth(macR, mac2))
	up.Wait(2, time.Second)

	// unicast to mac2 in VLAN 100 -> only vnet2, untagged
	up.Inject(eth(mac2, macR, ctag(0, 100)))
	if got := vm2.Wait(1, time.Second); len(got) != 1 || !bytes.Equal(got[0], eth(mac2, macR)) {
		t.Fatalf("vnet2 got %x", got)
	}
	// the reflected broadcast of vm1: vm2 gets it, vm1 does not, vm3 (other VLAN) does not
	up.Inject(eth(bcast, mac1, ctag(0, 100)))
	if got := vm2.Wait(1, time.Second); len(got) != 1 {
		t.Fatalf("vnet2 got %d broadcasts", len(got))
	}
	settle()
	if n := len(vm1.Sent()); n != 0 {
		t.Fatalf("vnet1 received its own broadcast back (%d frames)", n)
	}
	if n := len(vm3.Sent()); n != 0 {
		t.Fatalf("vnet3 in VLAN 200 received %d frames", n)
	}
	if d := r.portDrops("vnet1")["reflection"]; d != 1 {
		t.Fatalf("reflection drops = %d", d)
	}
	// unknown dst, unknown vlan, untagged, S-tag only
	up.Inject(eth(mac3, macR, ctag(0, 100)), eth(mac1, macR, ctag(0, 300)), eth(mac1, macR),
		eth(mac1, macR, vlan.Tag{TPID: vlan.TPIDSTag, TCI: 5}))
	settle()
	st := r.sw.UplinkCounters()
	if st.Drops["unknown_dst"] != 1 || st.Drops["unknown_vlan"] != 3 {
		t.Fatalf("uplink drops %v", st.Drops)
	}
	// control frames go to the control plane, not to VMs
	lldp := append(append(append([]byte{}, 0x01, 0x80, 0xc2, 0, 0, 0x0e), macR...), 0x88, 0xcc, 1, 2, 3)
	up.Inject(lldp)
	select {
	case f := <-r.ctl:
		if !bytes.Equal(f, lldp) {
			t.Fatalf("control got %x", f)
		}
	case <-time.After(time.Second):
		t.Fatal("LLDP did not reach the control plane")
	}
	settle()
	if n := len(vm1.Sent()) + len(vm2.Sent()); n != 0 {
		t.Fatalf("LLDP leaked to VMs (%d)", n)
	}
	if c := r.sw.UplinkCounters(); c.Control != 1 || c.Drops["control_unhandled"] != 0 || c.Drops["control_overrun"] != 0 {
		t.Fatalf("uplink control frames %d, drops %v: want 1 handled", c.Control, c.Drops)
	}
}

func TestUnknownUnicastFloodOptIn(t *testing.T) {
	p2 := access("vnet2", 100, 0)
	p2.Flood = true
	r := newRig(t, datapath.ModeVEPA, access("vnet1", 100, 0), p2)
	r.be.Iface("up0").Inject(eth(mac3, macR, ctag(0, 100)))
	if got := r.be.Iface("vnet2").Wait(1, time.Second); len(got) != 1 {
		t.Fatalf("flood port got %d", len(got))
	}
	if n := len(r.be.Iface("vnet1").Sent()); n != 0 {
		t.Fatalf("non-flood port got %d", n)
	}
}

func TestSChannelIngress(t *testing.T) {
	p := access("vnet1", 100, 0)
	p.SVID = 7
	r := newRig(t, datapath.ModeVEPA, p, access("vnet2", 100, 0))
	r.be.Iface("up0").Inject(eth(bcast, macR, vlan.Tag{TPID: vlan.TPIDSTag, TCI: 7}, ctag(0, 100)))
	if got := r.be.Iface("vnet1").Wait(1, time.Second); len(got) != 1 || !bytes.Equal(got[0], eth(bcast, macR)) {
		t.Fatalf("S-channel port got %x", got)
	}
	if n := len(r.be.Iface("vnet2").Sent()); n != 0 {
		t.Fatalf("port without S-channel got %d", n)
	}
}

func TestVEBSwitchesLocally(t *testing.T) {
	r := newRig(t, datapath.ModeVEB, access("vnet1", 100, 0), access("vnet2", 100, 0), access("vnet3", 200, 0))
	vm1, vm2, vm3, up := r.be.Iface("vnet1"), r.be.Iface("vnet2"), r.be.Iface("vnet3"), r.be.Iface("up0")
	vm2.Inject(eth(bcast, mac2)) // broadcast: local ports of VLAN 100 and the uplink
	if got := vm1.Wait(1, time.Second); len(got) != 1 || !bytes.Equal(got[0], eth(bcast, mac2)) {
		t.Fatalf("vnet1 got %x", got)
	}
	if got := up.Wait(1, time.Second); len(got) != 1 {
		t.Fatalf("uplink got %d", len(got))
	}
	vm1.Inject(eth(mac2, mac1)) // known local unicast: straight to vnet2, not the uplink
	if got := vm2.Wait(1, time.Second); len(got) != 1 || !bytes.Equal(got[0], eth(mac2, mac1)) {
		t.Fatalf("vnet2 got %x", got)
	}
	settle()
	if n := len(up.Sent()); n != 0 {
		t.Fatalf("known local unicast reached the uplink in VEB (%d)", n)
	}
	if n := len(vm3.Sent()); n != 0 {
		t.Fatalf("VLAN 200 port got %d", n)
	}
	// switching back to VEPA: the same unicast goes to the uplink
	r.sw.SetMode(datapath.ModeVEPA)
	vm1.Inject(eth(mac2, mac1))
	if got := up.Wait(1, time.Second); len(got) != 1 {
		t.Fatalf("VEPA: uplink got %d", len(got))
	}
}

func TestPortLifecycle(t *testing.T) {
	r := newRig(t, datapath.ModeVEPA)
	if err := r.sw.AddPort(access("vnet1", 0, 0)); err == nil {
		t.Fatal("port without VLAN accepted")
	}
	if err := r.sw.AddPort(access("vnet1", 4095, 0)); err == nil {
		t.Fatal("VLAN 4095 accepted")
	}
	if err := r.sw.AddPort(access("vnet1", 100, 0)); err != nil {
		t.Fatal(err)
	}
	if err := r.sw.AddPort(access("vnet1", 100, 0)); err == nil {
		t.Fatal("duplicate accepted")
	}
	vm := r.be.Iface("vnet1")
	for i := 0; i < 50; i++ {
		if err := r.sw.Attach("vnet1"); err != nil {
			t.Fatal(err)
		}
		r.sw.Detach("vnet1")
	}
	if n := vm.OpenQueues(); n != 0 {
		t.Fatalf("%d queues left open after detach", n)
	}
	if n := r.be.Iface("up0").OpenQueues(); n != 2 { // uplink RX + control TX
		t.Fatalf("uplink has %d open queues, want 2", n)
	}
	// delivery to a detached port is counted as port_down
	if err := r.sw.AddPort(access("vnet2", 100, 0)); err != nil {
		t.Fatal(err)
	}
	r.be.Iface("up0").Inject(eth(bcast, macR, ctag(0, 100)))
	settle()
	if d := r.portDrops("vnet2")["port_down"]; d != 1 {
		t.Fatalf("port_down = %d", d)
	}
	if err := r.sw.DeletePort("vnet2"); err != nil {
		t.Fatal(err)
	}
	if err := r.sw.DeletePort("vnet2"); err == nil {
		t.Fatal("deleting a deleted port succeeded")
	}
}

func TestRestartUplink(t *testing.T) {
	r := newRig(t, datapath.ModeVEPA, access("vnet1", 100, 0), access("vnet2", 100, 0))
	r.sw.Detach("vnet2") // stays detached across the restart
	up := r.be.Iface("up0")
	if n := up.OpenQueues(); n != 3 { // RX worker, control TX, vnet1's TX
		t.Fatalf("before: %d open uplink queues, want 3", n)
	}
	if err := r.sw.RestartUplink(); err != nil {
		t.Fatal(err)
	}
	if n := up.OpenQueues(); n != 3 {
		t.Fatalf("after restart: %d open uplink queues, want 3 (old ones closed, new ones open)", n)
	}
	if !r.sw.Attached("vnet1") || r.sw.Attached("vnet2") {
		t.Fatal("restart changed which ports are attached")
	}
	r.be.Iface("vnet1").Inject(eth(macR, mac1))
	if got := up.Wait(1, time.Second); len(got) != 1 {
		t.Fatalf("after restart the uplink got %d frames from vnet1", len(got))
	}
	up.Inject(eth(mac1, macR, ctag(0, 100)))
	if got := r.be.Iface("vnet1").Wait(1, time.Second); len(got) != 1 {
		t.Fatalf("after restart vnet1 got %d frames from the uplink", len(got))
	}
	if err := r.sw.SendControl([]byte{1, 2, 3}); err != nil {
		t.Fatalf("control TX after restart: %v", err)
	}
	if got := up.Wait(1, time.Second); len(got) != 1 || !bytes.Equal(got[0], []byte{1, 2, 3}) {
		t.Fatalf("the uplink got %x, want the control frame", got)
	}
	// The control plane hears the new uplink too.
	lldp := eth(net.HardwareAddr{0x01, 0x80, 0xc2, 0, 0, 0}, macR)
	binary.BigEndian.PutUint16(lldp[12:], datapath.EtherTypeLLDP)
	up.Inject(lldp)
	select {
	case f := <-r.ctl:
		if !bytes.Equal(f, lldp) {
			t.Fatalf("control got %x", f)
		}
	case <-time.After(time.Second):
		t.Fatal("LLDP did not reach the control plane after the restart")
	}
}

// Control frames are counted once each, whoever takes them: handed over,
// refused by a handler that cannot keep up (control_overrun), or with no
// handler at all (control_unhandled). None reaches a VM.
func TestControlFrameAccounting(t *testing.T) {
	ll := func(last byte, et uint16, tags ...vlan.Tag) []byte {
		f := eth(net.HardwareAddr{0x01, 0x80, 0xc2, 0, 0, last}, macR, tags...)
		binary.BigEndian.PutUint16(f[len(f)-48:], et)
		return f
	}
	lldp := ll(0, datapath.EtherTypeLLDP)
	ecp := ll(0, datapath.EtherTypeECP)
	stp := ll(0, 0x0026)                    // link-local by address alone
	tagged := eth(mac1, macR, ctag(0, 100)) // LLDP behind a tag, by ethertype alone
	binary.BigEndian.PutUint16(tagged[16:], datapath.EtherTypeLLDP)
	frames := [][]byte{lldp, ecp, stp, tagged}

	for _, c := range []struct {
		name    string
		handler func([]byte) bool
		drop    string
	}{
		{"handled", func([]byte) bool { return true }, ""},
		{"overrun", func([]byte) bool { return false }, "control_overrun"},
		{"unhandled", nil, "control_unhandled"},
	} {
		t.Run(c.name, func(t *testing.T) {
			be := queuetest.New()
			var got atomic.Int64
			h := c.handler
			var ctl func([]byte) bool
			if h != nil {
				ctl = func(f []byte) bool { got.Add(1); return h(f) }
			}
			sw, err := datapath.New(datapath.Config{Uplink: "up0", Backend: be, Control: ctl, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			if err := sw.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(sw.Stop)
			if err := sw.AddPort(access("vnet1", 100, 0)); err != nil {
				t.Fatal(err)
			}
			if err := sw.Attach("vnet1"); err != nil {
				t.Fatal(err)
			}
			be.Iface("up0").Inject(frames...)
			deadline := time.Now().Add(time.Second)
			for sw.UplinkCounters().Control < uint64(len(frames)) && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			settle()
			u := sw.UplinkCounters()
			if u.Control != uint64(len(frames)) {
				t.Errorf("control frames %d, want %d", u.Control, len(frames))
			}
			want := map[string]uint64{}
			if c.drop != "" {
				want[c.drop] = uint64(len(frames))
			}
			if len(u.Drops) != len(want) || u.Drops[c.drop] != want[c.drop] {
				t.Errorf("uplink drops %v, want %v", u.Drops, want)
			}
			if h != nil && got.Load() != int64(len(frames)) {
				t.Errorf("handler got %d frames, want %d", got.Load(), len(frames))
			}
			if n := len(be.Iface("vnet1").Sent()); n != 0 {
				t.Errorf("%d control frames reached a VM", n)
			}
		})
	}
}

// A trunk accepts its native VLAN tagged as well as untagged; both leave
// tagged with the native VID.
func TestTrunkNativeTagged(t *testing.T) {
	tr, _ := vlan.ParseVIDSet("10")
	r := newRig(t, datapath.ModeVEPA, port.Config{Name: "vnet1", Trunk: tr, NativeVLAN: 40})
	r.be.Iface("vnet1").Inject(eth(macR, mac1, ctag(2, 40)), eth(macR, mac1))
	got := r.be.Iface("up0").Wait(2, time.Second)
	if len(got) != 2 || !bytes.Equal(got[0], eth(macR, mac1, ctag(2, 40))) || !bytes.Equal(got[1], eth(macR, mac1, ctag(0, 40))) {
		t.Fatalf("uplink got %x", got)
	}
}
