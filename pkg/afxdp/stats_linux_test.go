//go:build linux

package afxdp

import (
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/vswitch/vswitch/pkg/backend"
	"golang.org/x/sys/unix"
)

// customStats returns q's custom counters by name.
func customStats(q *Queue) map[string]uint64 {
	m := map[string]uint64{}
	for _, s := range q.CustomStats(nil) {
		m[s.Name] = s.Value
	}
	return m
}

// A receiver reports its socket's XDP_STATISTICS under stable names, a
// transmitter sharing the socket reports nothing, the counters survive
// Close, and a later receiver of the same socket starts from zero.
func TestCustomStats(t *testing.T) {
	tp := newTopo(t)
	be := New(testOptions(t))
	rx := tp.open(t, be, tp.a, backend.QueueConfig{Role: backend.RoleUplinkRX, QueueID: 0})
	tx := tp.open(t, be, tp.a, backend.QueueConfig{Role: backend.RoleUplinkTX, QueueID: 0})

	want := []string{StatRxDropped, StatRxInvalidDescs, StatTxInvalidDescs, StatRxRingFull, StatFillRingEmpty, StatTxRingEmpty}
	got := rx.CustomStats(nil)
	if len(got) != len(want) {
		t.Fatalf("receiver reports %v, want the names %v", got, want)
	}
	for i, s := range got {
		if s.Name != want[i] {
			t.Errorf("counter %d is %s, want %s", i, s.Name, want[i])
		}
	}
	if got := tx.CustomStats(nil); len(got) != 0 {
		t.Errorf("transmit-only queue reports %v, want nothing (its socket is the receiver's)", got)
	}
	var buf [8]backend.Stat
	if a := testing.AllocsPerRun(10, func() { _ = rx.CustomStats(buf[:0]) }); a != 0 {
		t.Errorf("CustomStats allocates %.0f times with room in dst", a)
	}

	// Nobody calls Recv: once the fill ring's chunks are all in the RX
	// ring the kernel drops what follows, and counts it.
	fd := tp.packetSocket(t, tp.bIdx)
	sa := &unix.SockaddrLinklayer{Ifindex: tp.bIdx, Halen: 6}
	for i := 0; i < rxFrames+1000; i++ {
		_ = unix.Sendto(fd, frame(macA, macB, uint32(i), 60), 0, sa) // ENOBUFS: the veth is busy, go on
		if i%64 == 63 {
			time.Sleep(200 * time.Microsecond)
		}
	}
	var dropped uint64
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		cs := customStats(rx)
		if dropped = cs[StatRxDropped] + cs[StatRxRingFull]; dropped > 0 {
			break
		}
	}
	if dropped == 0 {
		t.Fatalf("%d frames sent into an RX ring nobody reads, custom stats %v: no drop counted", rxFrames+1000, customStats(rx))
	}
	// Every frame was 60 bytes: all drops are overruns, none oversize
	// (the kernel's rx_dropped also counts the fill-ring misses of copy
	// mode; they must not come out as malformed frames too).
	cs, st := customStats(rx), rx.Stats()
	t.Logf("custom stats %v, stats %+v", cs, st)
	if st.RxDropped == 0 {
		t.Errorf("custom counters show %d drops, Stats %+v no overrun", dropped, st)
	}
	if st.RxOversize != 0 {
		t.Errorf("only 60-byte frames were sent, yet RxOversize = %d (RxDropped %d, custom %v)", st.RxOversize, st.RxDropped, cs)
	}

	before := customStats(rx)
	if err := rx.Close(); err != nil {
		t.Fatal(err)
	}
	after := customStats(rx)
	for _, n := range want {
		if after[n] < before[n] {
			t.Errorf("%s went from %d to %d at Close", n, before[n], after[n])
		}
	}
	rx2 := tp.open(t, be, tp.a, backend.QueueConfig{Role: backend.RoleUplinkRX, QueueID: 0})
	if rx2.x != tx.x {
		t.Fatal("the second receiver did not join the surviving socket")
	}
	for n, v := range customStats(rx2) {
		if v != 0 {
			t.Errorf("new receiver of the socket starts with %s=%d, want 0 (the first receiver's)", n, v)
		}
	}
}

// rxDrops splits the kernel's counters by reason. Copy mode counts a frame
// that found the fill ring empty in rx_dropped and again in
// rx_fill_ring_empty_descs; zero-copy counts such misses in the latter only.
func TestRxDrops(t *testing.T) {
	for _, c := range []struct {
		name              string
		st                unix.XDPStatistics
		zeroCopy, shared  bool
		overrun, oversize uint64
	}{
		{"copy: fill ring empty only", unix.XDPStatistics{Rx_dropped: 1472, Rx_fill_ring_empty_descs: 1472}, false, false, 1472, 0},
		{"copy: oversize and fill ring empty", unix.XDPStatistics{Rx_dropped: 1010, Rx_fill_ring_empty_descs: 1000}, false, false, 1000, 10},
		{"copy: ring full and bad descriptors", unix.XDPStatistics{Rx_ring_full: 7, Rx_invalid_descs: 2, Rx_dropped: 3}, false, false, 9, 3},
		{"copy: misses beyond rx_dropped", unix.XDPStatistics{Rx_dropped: 2, Rx_fill_ring_empty_descs: 5}, false, false, 5, 0},
		{"zero-copy: misses never in rx_dropped", unix.XDPStatistics{Rx_dropped: 4, Rx_fill_ring_empty_descs: 50, Rx_ring_full: 1}, true, false, 51, 4},
		{"copy, sharing a UMEM: rx_dropped's misses are the pool's, counted by class 0", unix.XDPStatistics{Rx_dropped: 6, Rx_ring_full: 1}, false, true, 1, 0},
		{"zero-copy, sharing a UMEM: rx_dropped is oversize", unix.XDPStatistics{Rx_dropped: 6, Rx_ring_full: 1}, true, true, 1, 6},
		{"nothing", unix.XDPStatistics{}, false, false, 0, 0},
	} {
		overrun, oversize := rxDrops(c.st, c.zeroCopy, c.shared)
		if overrun != c.overrun || oversize != c.oversize {
			t.Errorf("%s: rxDrops = overrun %d, oversize %d; want %d, %d", c.name, overrun, oversize, c.overrun, c.oversize)
		}
	}
}

// A frame longer than the UMEM chunk holds is dropped by the kernel and
// counted as oversize (malformed), not as an overrun.
func TestStatsOversize(t *testing.T) {
	tp := newTopo(t)
	be := New(testOptions(t))
	// 1518-byte frames: 2048-byte chunks, 1792 bytes of room after the
	// XDP headroom.
	rx := tp.open(t, be, tp.a, backend.QueueConfig{Role: backend.RoleUplinkRX, QueueID: 0, FrameSize: 1518})
	if rx.x.chunk != 2048 {
		t.Fatalf("chunk %d, want 2048", rx.x.chunk)
	}
	// Raise both ends' MTU past the chunk, so the veth carries the frame
	// to the XDP program.
	inNS(t, tp.ns, func() {
		for _, n := range []string{tp.a, tp.b} {
			l, err := netlink.LinkByName(n)
			if err != nil {
				t.Fatal(err)
			}
			if err := netlink.LinkSetMTU(l, 2000); err != nil {
				t.Skipf("set %s mtu 2000 with XDP attached: %v", n, err)
			}
		}
	})
	fd := tp.packetSocket(t, tp.bIdx)
	sa := &unix.SockaddrLinklayer{Ifindex: tp.bIdx, Halen: 6}
	const big, small = 5, 3
	for i := 0; i < big; i++ {
		if err := unix.Sendto(fd, frame(macA, macB, uint32(i), 1900), 0, sa); err != nil {
			t.Fatalf("send 1900-byte frame: %v", err)
		}
	}
	for i := 0; i < small; i++ {
		if err := unix.Sendto(fd, frame(macA, macB, uint32(100+i), 60), 0, sa); err != nil {
			t.Fatalf("send 60-byte frame: %v", err)
		}
	}
	var st backend.QueueStats
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if st = rx.Stats(); st.RxOversize >= big {
			break
		}
	}
	if st.RxOversize != big || st.RxDropped != 0 {
		t.Errorf("%d frames over the chunk and %d small ones: RxOversize %d, RxDropped %d; want %d, 0 (custom %v)",
			big, small, st.RxOversize, st.RxDropped, big, customStats(rx))
	}
	// The small ones arrived, and only they.
	for i, f := range recvFrames(t, rx, small, 2*time.Second) {
		if len(f) != 60 {
			t.Errorf("frame %d: %d bytes, want 60", i, len(f))
		}
	}
}
