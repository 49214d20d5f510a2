package daemon

import (
	"runtime"
	"testing"
)

func TestProcsFor(t *testing.T) {
	for _, c := range []struct{ base, workers, want int }{
		{2, 0, 2},
		{2, 3, 5},
		{2, -1, 2},
		{4, maxExtraProcs + 100, 4 + maxExtraProcs},
	} {
		if got := procsFor(c.base, c.workers); got != c.want {
			t.Errorf("procsFor(%d, %d) = %d, want %d", c.base, c.workers, got, c.want)
		}
	}
}

// Each worker adds a P and stopped workers give theirs back; a GOMAXPROCS
// from the environment is never changed.
func TestProcSizer(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(before) })
	p := &procSizer{base: before}
	p.workers(3)
	if got := runtime.GOMAXPROCS(0); got != before+3 {
		t.Errorf("3 workers: GOMAXPROCS %d, want %d", got, before+3)
	}
	p.workers(0)
	if got := runtime.GOMAXPROCS(0); got != before {
		t.Errorf("no workers: GOMAXPROCS %d, want %d back", got, before)
	}
	fixed := &procSizer{base: before, fixed: true}
	fixed.workers(5)
	if got := runtime.GOMAXPROCS(0); got != before {
		t.Errorf("GOMAXPROCS from the environment: changed to %d", got)
	}
}
