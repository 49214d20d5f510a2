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
// frame from each through the VM -> uplink pipeline and returns the live
// heap each port added: the datapath's own (port, counters, egress worker)
// plus the in-memory backend's two queues (a channel of 4096 frames each,
// 96 KiB).
func heapPerPort(t *testing.T, mode datapath.Mode, n int) int {
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
		r.be.Iface(fmt.Sprintf("vnet%d", i)).Inject(eth(macR, src))
	}
	if got := up.Wait(n, 5*time.Second); len(got) != n {
		t.Fatalf("the uplink got %d frames of %d", len(got), n)
	}
	return (live() - before) / n
}

// A VEPA port sends everything to the uplink: its egress worker has no
// use for the fanout of VEB mode (a 526 KiB arena and a queue per
// destination port), so attaching one costs the datapath a few KiB of heap.
// (A port of vswitchd costs more: its backend's ring and buffers, see
// README "Memory and file descriptors".)
func TestVEPAPortHeap(t *testing.T) {
	const ports = 32
	const backendQueues = 2 * 4096 * 24 // queuetest: a chan []byte of 4096 per queue
	per := heapPerPort(t, datapath.ModeVEPA, ports)
	t.Logf("VEPA: %d bytes of heap per port (%d of them the in-memory backend's queues)", per, backendQueues)
	if per > backendQueues+64<<10 {
		t.Errorf("a VEPA port costs %d KiB of heap, want at most %d KiB beyond the test backend's %d KiB", per>>10, 64, backendQueues>>10)
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
