package integration

import (
	"bytes"
	"testing"
	"time"

	"github.com/vswitch/vswitch/test/topo"
)

// With --mtu 9000, jumbo frames cross the switch (tagged on the uplink,
// whose MTU is 4 bytes larger) and frames above the MTU are still counted
// as malformed. AF_XDP carries at most MTU 3818 (no multi-buffer), so
// `--datapath auto` picks AF_PACKET for jumbo MTUs; this test pins afpacket.
func TestJumboFrames(t *testing.T) {
	needBinaries(t)
	t.Parallel()
	l, hvs := newLab(t, "afpacket", 1)
	h := hvs[0]
	vm1, vm2 := h.addVM(1), h.addVM(2)
	for _, s := range []struct {
		ns  *topo.NS
		dev string
		mtu int
	}{
		// the VM links allow a bit more than --mtu so a VM can send a frame
		// vswitchd must refuse
		{vm1.ns, "eth0", 9100}, {vm2.ns, "eth0", 9100}, {h.ns, vm1.port, 9100}, {h.ns, vm2.port, 9100},
		{h.ns, "uplink", 9004}, {l.sw, h.swPort, 9004}, {l.sw, "br0", 9004},
	} {
		if err := s.ns.SetMTU(s.dev, s.mtu); err != nil {
			t.Fatal(err)
		}
	}
	h.start("--mtu", "9000")
	h.addPort(vm1.port, "--vlan", "100")
	h.addPort(vm2.port, "--vlan", "100")
	vm1.mustPing(vm2) // learns both MACs

	tx, err := vm1.ns.PacketConn("eth0")
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	rx, err := vm2.ns.PacketConn("eth0")
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	payload := bytes.Repeat([]byte{0xa5}, 8900)
	jumbo := topo.BuildUDPv4(vm2.mac, vm1.mac, []byte{10, 0, 0, 1}, []byte{10, 0, 0, 2}, 4000, 4001, payload)
	if err := tx.WriteFrame(jumbo); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	got := false
	for time.Now().Before(deadline) && !got {
		f, err := rx.ReadFrame(500 * time.Millisecond)
		if err == nil && bytes.Equal(f, jumbo) {
			got = true
		}
	}
	if !got {
		t.Fatalf("a %d-byte frame did not reach vm2 intact with --mtu 9000", len(jumbo))
	}
	before := h.drops(vm1.port, "malformed")
	over := topo.BuildUDPv4(vm2.mac, vm1.mac, []byte{10, 0, 0, 1}, []byte{10, 0, 0, 2}, 4000, 4001, make([]byte, 8990))
	if err := tx.WriteFrame(over); err != nil { // 9032 bytes: above MTU+18
		t.Fatal(err)
	}
	if d := h.waitDrops(vm1.port, "malformed", before+1, 3*time.Second); d != before+1 {
		t.Fatalf("frame above --mtu: malformed drops %d -> %d, want +1", before, d)
	}
}
