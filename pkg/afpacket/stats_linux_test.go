//go:build linux

package afpacket

import (
	"testing"

	"github.com/vswitch/vswitch/pkg/backend"
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
