package datapath

import (
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"testing"
	"time"

	portcfg "github.com/vswitch/vswitch/pkg/port"
	"github.com/vswitch/vswitch/pkg/vlan"
)

func nullSwitch(t testing.TB) *Switch {
	t.Helper()
	sw, err := New(Config{Uplink: "up0", Backend: nullBackend{}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return sw
}

func manyMACs(prefix byte, n int) []net.HardwareAddr {
	out := make([]net.HardwareAddr, n)
	for i := range out {
		out[i] = net.HardwareAddr{0x52, 0x54, prefix, 0, byte(i >> 8), byte(i)}
	}
	return out
}

// measure returns what fn allocated and how long it took.
func measure(fn func()) (bytes uint64, d time.Duration) {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	start := time.Now()
	fn()
	d = time.Since(start)
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc, d
}

// A trunk of every VLAN with the most MACs a port may register costs
// O(MACs + VIDs): before the per-MAC index it was 4094 x 256 map entries
// (issue 9: 1,000 MACs took 1.36 GB), and every later change rebuilt them.
// A later unrelated change costs in proportion to itself.
func TestRegisteredMACsOnFullTrunkAreCheap(t *testing.T) {
	sw := nullSwitch(t)
	all, _ := vlan.ParseVIDSet("1-4094")
	macs := manyMACs(1, portcfg.MaxRegisteredMACs)
	var err error
	alloc, took := measure(func() {
		err = sw.AddPort(portcfg.Config{Name: "trunk0", Trunk: all, MACs: macs})
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("trunk 1-4094 with %d MACs: %d KiB allocated, %v", len(macs), alloc>>10, took)
	if alloc > 1<<20 {
		t.Errorf("adding the trunk allocated %d KiB, want < 1 MiB", alloc>>10)
	}
	snap := sw.snap.Load()
	if snap.static.n != len(macs) {
		t.Errorf("index holds %d registrations, want %d", snap.static.n, len(macs))
	}
	for _, vid := range []uint16{1, 2000, 4094} {
		if slot, ok := snap.registered(0, vid, macs[255]); !ok || slot != 0 {
			t.Errorf("MAC %s on VID %d: slot %d, %v", macs[255], vid, slot, ok)
		}
	}
	if _, ok := snap.registered(7, 100, macs[0]); ok {
		t.Error("a registered MAC answered for an S-channel its port is not on")
	}
	if _, ok := snap.registered(0, 100, manyMACs(2, 1)[0]); ok {
		t.Error("an unregistered MAC was found")
	}
	if n := len(sw.FDBEntries(4000)); n != len(macs) {
		t.Errorf("FDBEntries(4000) lists %d registered MACs, want %d", n, len(macs))
	}

	// An unrelated port: its own VID and MAC, nothing of the trunk's.
	alloc, took = measure(func() {
		for i := range 10 {
			err = sw.AddPort(portcfg.Config{Name: fmt.Sprintf("vnet%d", i), VLAN: 100, MACs: manyMACs(3, 1)})
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("10 access ports beside it: %d KiB allocated, %v", alloc>>10, took)
	if alloc > 10*256<<10 {
		t.Errorf("10 unrelated changes allocated %d KiB, want < 2.5 MiB", alloc>>10)
	}
	if err := sw.DeletePort("trunk0"); err != nil {
		t.Fatal(err)
	}
	snap = sw.snap.Load()
	if snap.static.n != 10 {
		t.Errorf("after deleting the trunk the index holds %d registrations, want the 10 access ports'", snap.static.n)
	}
	for vid := uint16(1); vid <= vlan.MaxVID; vid++ {
		if vid != 100 && len(snap.byVID[vid]) != 0 {
			t.Fatalf("VID %d still lists %d ports after the trunk went", vid, len(snap.byVID[vid]))
		}
	}
	if n := len(snap.byVID[100]); n != 10 {
		t.Errorf("VID 100 lists %d ports, want 10", n)
	}
}

// Many ports may register the same MAC (a VM migrating between two taps):
// the lookup answers with the one that carries the frame's VLAN.
func TestRegisteredMACSharedByPorts(t *testing.T) {
	sw := nullSwitch(t)
	m := manyMACs(1, 1)
	for _, c := range []portcfg.Config{
		{Name: "a", VLAN: 100, MACs: m},
		{Name: "b", VLAN: 200, MACs: m},
		{Name: "c", VLAN: 200, SVID: 5, MACs: m},
	} {
		if err := sw.AddPort(c); err != nil {
			t.Fatal(err)
		}
	}
	snap := sw.snap.Load()
	for _, tc := range []struct {
		svid, vid uint16
		port      string
	}{{0, 100, "a"}, {0, 200, "b"}, {5, 200, "c"}, {0, 300, ""}, {5, 100, ""}} {
		slot, ok := snap.registered(tc.svid, tc.vid, m[0])
		got := ""
		if ok {
			got = snap.slots[slot].cfg.Name
		}
		if got != tc.port {
			t.Errorf("(%d, %d): %q, want %q", tc.svid, tc.vid, got, tc.port)
		}
	}
	// b stops registering it: a and c keep theirs.
	if err := sw.UpdatePort(portcfg.Config{Name: "b", VLAN: 200}); err != nil {
		t.Fatal(err)
	}
	snap = sw.snap.Load()
	if _, ok := snap.registered(0, 200, m[0]); ok {
		t.Error("b's registration survived its removal")
	}
	if _, ok := snap.registered(5, 200, m[0]); !ok {
		t.Error("c's registration went with b's")
	}
	if snap.static.n != 2 {
		t.Errorf("%d registrations, want 2", snap.static.n)
	}
}

// BenchmarkUpdateBesideFullTrunks: one change (a PCP) on a switch with 16
// trunks of every VLAN, each with 256 registered MACs.
func BenchmarkUpdateBesideFullTrunks(b *testing.B) {
	sw := nullSwitch(b)
	all, _ := vlan.ParseVIDSet("1-4094")
	for i := range 16 {
		if err := sw.AddPort(portcfg.Config{Name: fmt.Sprintf("t%d", i), Trunk: all, MACs: manyMACs(byte(i), portcfg.MaxRegisteredMACs)}); err != nil {
			b.Fatal(err)
		}
	}
	if err := sw.AddPort(portcfg.Config{Name: "vnet1", VLAN: 100}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := sw.UpdatePort(portcfg.Config{Name: "vnet1", VLAN: 100, PCP: uint8(i % 8)}); err != nil {
			b.Fatal(err)
		}
	}
}

// A port with the most MACs a port may register sends from each of them
// and from no other.
func TestEveryRegisteredMACPasses(t *testing.T) {
	macs := manyMACs(1, portcfg.MaxRegisteredMACs)
	sw := limitSwitch(t, FDBLimits{}, portcfg.Config{Name: "a", VLAN: 100, MACs: macs})
	ws := workers{}
	for i := len(macs) - 1; i >= 0; i-- {
		ws.feed(sw, "a", fromMAC(macs[i]))
	}
	if d := sw.ports["a"].ctr.Drops(); len(d) != 0 {
		t.Fatalf("registered MACs dropped: %v", d)
	}
	ws.feed(sw, "a", fromMAC(manyMACs(2, 1)[0]), fromMAC(net.HardwareAddr{0x52, 0x54, 1, 0, 1, 0}))
	if got := drops(sw, "a", DropSpoofedSrc); got != 2 {
		t.Errorf("%d spoofed_src drops, want 2", got)
	}
	if sw.fdb.Len() != 0 {
		t.Errorf("a port with registered MACs learned %d", sw.fdb.Len())
	}
}
