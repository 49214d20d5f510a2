//go:build linux

package afpacket

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

// Every role reports the same names in the same order, open or closed,
// and a caller's buffer with room is filled without allocating.
func TestCustomStatsNames(t *testing.T) {
	want := []string{StatGSOFrames, StatGSOSegments, StatGSODropped, StatChecksumsFixed, StatChecksumsUnfixed, StatRingFreezes, StatRingResyncs, StatCopyResyncs}
	n := newTestNet(t)
	for _, role := range []backend.Role{backend.RolePort, backend.RoleUplinkRX, backend.RoleUplinkTX} {
		q := n.open(smallRing(), "vb", backend.QueueConfig{Role: role})
		check := func(when string) {
			t.Helper()
			got := q.CustomStats(nil)
			if len(got) != len(want) {
				t.Fatalf("%s %s: %d counters %v, want %v", role, when, len(got), got, want)
			}
			for i, s := range got {
				if s.Name != want[i] || s.Value != 0 {
					t.Errorf("%s %s: counter %d is %s=%d, want %s=0", role, when, i, s.Name, s.Value, want[i])
				}
			}
		}
		check("open")
		var buf [8]backend.Stat
		if a := testing.AllocsPerRun(10, func() { _ = q.CustomStats(buf[:0]) }); a != 0 {
			t.Errorf("%s: CustomStats allocates %.0f times with room in dst", role, a)
		}
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
		check("closed")
	}
}

// ring_freezes counts ring-full episodes, not reads of the counters: an
// overload during which Stats is read fifty times, each read finding new
// drops, is one freeze; reading the counters afterwards changes nothing;
// a second overload is a second freeze.
func TestRingFreezesIndependentOfReader(t *testing.T) {
	n := newTestNet(t)
	q := n.open(smallRing(), "vb", backend.QueueConfig{Role: backend.RoleUplinkRX})
	tx := n.raw("va", false)
	slots := len(q.rx.slots)
	overload := func(round int) {
		t.Helper()
		for i := range slots + 20 {
			tx.send(t, ethFrame(round*100+i%100, nil, 0x88b5, 46))
		}
		deadline := time.Now().Add(2 * time.Second)
		// Full: the slot before the cursor holds a frame again.
		for q.rx.slotStatus((q.rx.cur+slots-1)%slots)&unix.TP_STATUS_USER == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the ring did not fill")
			}
			time.Sleep(time.Millisecond)
		}
		// More frames while the ring is full, the counters read after each.
		before := q.Stats().RxDropped
		for i := range 50 {
			tx.send(t, ethFrame(round*100+i, nil, 0x88b5, 46))
			time.Sleep(time.Millisecond)
			_ = q.Stats()
		}
		if d := q.Stats().RxDropped - before; d < 40 {
			t.Fatalf("%d drops while full, want about 50", d)
		}
	}
	drain := func() {
		t.Helper()
		b := backend.NewBatch(backend.DefaultBatch)
		for q.rx.ready() {
			if _, err := q.Recv(b); err != nil {
				t.Fatal(err)
			}
			q.Release(b)
		}
	}

	overload(0)
	if f := customStats(q)[StatRingFreezes]; f != 0 {
		t.Fatalf("%s = %d before the reader released anything, want 0", StatRingFreezes, f)
	}
	drain()
	for range 100 {
		_ = q.Stats()
		_ = q.CustomStats(nil)
	}
	if f := customStats(q)[StatRingFreezes]; f != 1 {
		t.Fatalf("%s = %d after one overload read 50 times, want 1", StatRingFreezes, f)
	}
	overload(1)
	drain()
	if f := customStats(q)[StatRingFreezes]; f != 2 {
		t.Fatalf("%s = %d after two overloads, want 2", StatRingFreezes, f)
	}
}
