//go:build linux

package afxdp

import (
	"testing"
	"time"

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
	st := rx.Stats()
	if st.RxDropped+st.RxOversize == 0 {
		t.Errorf("custom counters show %d drops, Stats %+v none", dropped, st)
	}
	t.Logf("custom stats %v", customStats(rx))

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
