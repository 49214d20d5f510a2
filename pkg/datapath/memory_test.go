package datapath_test

import (
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/vswitch/vswitch/pkg/datapath"
)

// heapPerPort attaches n ports on VLAN 100 to a switch in mode, sends one
// frame to dst from each through the VM -> uplink pipeline and returns the
// live heap each port added: the datapath's own (port, counters, egress
// worker and its VEB fanout) plus the in-memory backend's two queues (a
// channel of 4096 frames each, 96 KiB). A broadcast in VEB mode must reach
// every other port too; the frames the backend keeps are taken away
// before the heap is measured.
func heapPerPort(t *testing.T, mode datapath.Mode, n int, dst net.HardwareAddr) int {
	t.Helper()
	r := newRig(t, mode)
	up := r.be.Iface("up0")
	live := func() int {
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return int(ms.HeapAlloc)
	}
	before := live()
	for i := range n {
		c := access(fmt.Sprintf("vnet%d", i), 100, 0)
		if err := r.sw.AddPort(c); err != nil {
			t.Fatal(err)
		}
		if err := r.sw.Attach(c.Name); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		src := net.HardwareAddr{0x52, 0x54, 0, 1, byte(i >> 8), byte(i)}
		r.be.Iface(fmt.Sprintf("vnet%d", i)).Inject(eth(dst, src))
	}
	if got := up.Wait(n, 5*time.Second); len(got) != n {
		t.Fatalf("the uplink got %d frames of %d", len(got), n)
	}
	if mode == datapath.ModeVEB && dst[0]&1 != 0 {
		for i := range n {
			if got := r.be.Iface(fmt.Sprintf("vnet%d", i)).Wait(n-1, 10*time.Second); len(got) != n-1 {
				t.Fatalf("vnet%d got %d of the other ports' %d broadcasts", i, len(got), n-1)
			}
		}
	}
	return (live() - before) / n
}

// A VEPA port sends everything to the uplink: its egress worker has no
// use for the fanout of VEB mode (a 514 KiB arena and 32 KiB of pending
// deliveries), so attaching one costs the datapath a few KiB of heap.
// (A port of vswitchd costs more: its backend's ring and buffers, see
// README "Memory and file descriptors".)
func TestVEPAPortHeap(t *testing.T) {
	const ports = 32
	const backendQueues = 2 * 4096 * 24 // queuetest: a chan []byte of 4096 per queue
	per := heapPerPort(t, datapath.ModeVEPA, ports, macR)
	t.Logf("VEPA: %d bytes of heap per port (%d of them the in-memory backend's queues)", per, backendQueues)
	if per > backendQueues+64<<10 {
		t.Errorf("a VEPA port costs %d KiB of heap, want at most %d KiB beyond the test backend's %d KiB", per>>10, 64, backendQueues>>10)
	}
}

// In VEB mode every port's worker copies the other ports' frames of its
// VLAN into a fanout whose size depends on the batch, never on how many
// ports it floods to: n ports flooding one VLAN cost n times a port, not
// n x (n-1) queues (before: a 1.5 KiB queue per destination in every
// worker, 6 MiB at 64 ports, 1.5 GiB at 1024).
func TestVEBPortHeap(t *testing.T) {
	const backendQueues = 2 * 4096 * 24 // queuetest: a chan []byte of 4096 per queue
	// The fanout: an arena of 2 x 64 frames of 2056 bytes, 4096
	// deliveries of 4 bytes (and 2 for the list of ports touched), 4 bytes
	// per port slot, 3 x 64 frame headers; and a port's own few KiB
	// (TestVEPAPortHeap).
	const fanout = 2*64*2056 + 4096*(4+2) + 4*4096 + 3*64*24
	const budget = backendQueues + fanout + 64<<10
	bcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	small := heapPerPort(t, datapath.ModeVEB, 32, bcast)
	large := heapPerPort(t, datapath.ModeVEB, 256, bcast)
	t.Logf("VEB, every port flooding its VLAN: %d KiB of heap per port at 32 ports, %d KiB at 256 (%d KiB of them the in-memory backend's queues)",
		small>>10, large>>10, backendQueues>>10)
	for _, c := range []struct{ ports, per int }{{32, small}, {256, large}} {
		if c.per > budget {
			t.Errorf("%d ports in VEB: a port costs %d KiB of heap, want at most %d KiB", c.ports, c.per>>10, budget>>10)
		}
	}
	// 224 more destinations for every worker: 336 KiB a port with a
	// queue per destination.
	if large-small > 32<<10 {
		t.Errorf("a port costs %d KiB more at 256 ports than at 32: its heap grows with the ports it floods to", (large-small)>>10)
	}
}

// FDBVersion moves when what LearnedFDB lists may have changed (a MAC
// learned, moved or removed, a port changed) and stays while the VMs only
// keep talking, so the daemon saves nothing while the network is steady.
func TestFDBVersion(t *testing.T) {
	r := newRig(t, datapath.ModeVEPA, access("vnet1", 100, 0), access("vnet2", 100, 0))
	up := r.be.Iface("up0")
	send := func(port string, src net.HardwareAddr) {
		t.Helper()
		r.be.Iface(port).Inject(eth(macR, src))
		if got := up.Wait(1, 2*time.Second); len(got) != 1 {
			t.Fatalf("the uplink got %d frames from %s", len(got), port)
		}
	}
	v0 := r.sw.FDBVersion()
	send("vnet1", mac1)
	v1 := r.sw.FDBVersion()
	if v1 == v0 {
		t.Fatal("learning a MAC left FDBVersion as it was")
	}
	for range 3 {
		send("vnet1", mac1)
	}
	if !r.sw.RestoreFDB(100, mac1, "vnet1") { // a refresh, as a frame after 1 s
		t.Fatal("RestoreFDB of a MAC the port has learned")
	}
	if v := r.sw.FDBVersion(); v != v1 {
		t.Fatalf("frames from a learned MAC moved FDBVersion %d -> %d", v1, v)
	}
	send("vnet2", mac1) // the MAC moves to vnet2
	v2 := r.sw.FDBVersion()
	if v2 == v1 {
		t.Fatal("moving a MAC left FDBVersion as it was")
	}
	if err := r.sw.UpdatePort(access("vnet2", 200, 0)); err != nil {
		t.Fatal(err)
	}
	if v := r.sw.FDBVersion(); v == v2 {
		t.Fatal("reconfiguring a port left FDBVersion as it was")
	}
	if n := len(r.sw.LearnedFDB()); n != 0 {
		t.Fatalf("%d entries learned after the port left their VLAN", n)
	}
}
