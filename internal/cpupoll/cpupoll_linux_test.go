//go:build linux

package cpupoll

import (
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func newSet(t *testing.T, n int) *Set {
	t.Helper()
	s, err := New(n, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func eventfd(t *testing.T) int {
	t.Helper()
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func kick(t *testing.T, fd int) {
	t.Helper()
	one := [8]byte{1}
	if _, err := unix.Write(fd, one[:]); err != nil {
		t.Fatal(err)
	}
}

// drain reads an eventfd's count (0 when none).
func drain(fd int) uint64 {
	var b [8]byte
	if n, _ := unix.Read(fd, b[:]); n != 8 {
		return 0
	}
	return uint64(b[0]) | uint64(b[1])<<8
}

func getcpu() int {
	var cpu uint32
	unix.RawSyscall(unix.SYS_GETCPU, uintptr(unsafe.Pointer(&cpu)), 0, 0)
	return int(cpu)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestRunsOnItsCPU: a target enabled on CPU c runs on c's poller, on a
// thread that runs on CPU c, when its descriptor signals.
func TestRunsOnItsCPU(t *testing.T) {
	s := newSet(t, 8)
	for _, p := range s.pollers {
		fd := eventfd(t)
		var arg, ran atomic.Int64
		arg.Store(-1)
		ran.Store(-1)
		tg, err := s.Add(fd, func(cpu int) bool {
			if drain(fd) != 0 {
				arg.Store(int64(cpu))
				ran.Store(int64(getcpu()))
			}
			return false
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := tg.Enable(p.cpu); err != nil {
			t.Fatal(err)
		}
		if got := tg.CPU(); got != p.cpu {
			t.Fatalf("CPU() = %d, want %d", got, p.cpu)
		}
		// The poller's thread may be elsewhere for a while (the kernel
		// wakes it where it can run at once, and it moves home at most
		// once per SweepEvery): it must be home within a few.
		home := false
		for try := 0; try < 40 && !home; try++ {
			arg.Store(-1)
			kick(t, fd)
			waitFor(t, "the run", func() bool { return arg.Load() >= 0 })
			if arg.Load() != int64(p.cpu) {
				t.Fatalf("target enabled on CPU %d ran with cpu %d", p.cpu, arg.Load())
			}
			home = ran.Load() == int64(p.cpu)
			if !home {
				time.Sleep(50 * time.Millisecond)
			}
		}
		if !home {
			t.Errorf("target of CPU %d: its poller never ran on CPU %d (last on %d)", p.cpu, p.cpu, ran.Load())
		}
		tg.Remove()
	}
	if st := s.Stats(); st.PinErr != "" || st.Pollers != len(s.pollers) || st.Wakeups == 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestMoreIsFair: a target that always has more does not starve another
// on the same poller, and runs again without a new event.
func TestMoreIsFair(t *testing.T) {
	s := newSet(t, 8)
	busyFD, quietFD := eventfd(t), eventfd(t)
	var busyRuns, quietAt atomic.Int64
	stop := atomic.Bool{}
	busy, _ := s.Add(busyFD, func(int) bool {
		busyRuns.Add(1)
		return !stop.Load()
	})
	quiet, _ := s.Add(quietFD, func(int) bool {
		if drain(quietFD) != 0 {
			quietAt.Store(busyRuns.Load())
		}
		return false
	})
	cpu := s.pollers[0].cpu
	for _, tg := range []*Target{busy, quiet} {
		if err := tg.Enable(cpu); err != nil {
			t.Fatal(err)
		}
	}
	kick(t, busyFD)
	waitFor(t, "the busy target's runs", func() bool { return busyRuns.Load() > 100 })
	kicked := time.Now()
	kick(t, quietFD)
	waitFor(t, "the quiet target", func() bool { return quietAt.Load() > 0 })
	if d := time.Since(kicked); d > 50*time.Millisecond {
		t.Errorf("the quiet target ran %v after its event, behind a busy one: want it in the next round", d)
	}
	stop.Store(true)
	busy.Remove()
	quiet.Remove()
	if n := busyRuns.Load(); n < 100 {
		t.Errorf("busy target ran %d times on one event, want it to go on while it has more", n)
	}
}

// TestMoveAndDisable: a moved target runs on its new CPU's poller; a
// disabled one does not run on events; Remove waits for a running fn and
// no run follows.
func TestMoveAndDisable(t *testing.T) {
	s := newSet(t, 8)
	if len(s.pollers) < 2 {
		t.Skip("needs two CPUs")
	}
	fd := eventfd(t)
	var lastCPU, runs atomic.Int64
	lastCPU.Store(-1)
	release := make(chan struct{})
	var block atomic.Bool
	tg, _ := s.Add(fd, func(cpu int) bool {
		if drain(fd) == 0 {
			return false
		}
		runs.Add(1)
		lastCPU.Store(int64(cpu))
		if block.Load() {
			<-release
		}
		return false
	})
	a, b := s.pollers[0].cpu, s.pollers[1].cpu
	if err := tg.Enable(a); err != nil {
		t.Fatal(err)
	}
	if err := tg.Move(b); err != nil {
		t.Fatal(err)
	}
	kick(t, fd)
	waitFor(t, "a run", func() bool { return runs.Load() == 1 })
	if got := lastCPU.Load(); got != int64(b) {
		t.Errorf("moved to %d, ran on %d's poller", b, got)
	}
	if st := s.Stats(); st.Moves != 1 {
		t.Errorf("moves = %d, want 1", st.Moves)
	}

	tg.Disable()
	if tg.CPU() != -1 {
		t.Errorf("disabled target reports CPU %d", tg.CPU())
	}
	kick(t, fd)
	time.Sleep(SweepEvery + 50*time.Millisecond)
	if runs.Load() != 1 {
		t.Fatalf("a disabled target ran (%d runs)", runs.Load())
	}

	block.Store(true)
	if err := tg.Enable(a); err != nil { // readable already: runs at once
		t.Fatal(err)
	}
	waitFor(t, "the blocked run", func() bool { return runs.Load() == 2 })
	removed := make(chan struct{})
	go func() { tg.Remove(); close(removed) }()
	select {
	case <-removed:
		t.Fatal("Remove returned while fn was running")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-removed
	kick(t, fd)
	time.Sleep(50 * time.Millisecond)
	if runs.Load() != 2 {
		t.Errorf("ran after Remove (%d runs)", runs.Load())
	}
}

// TestSweep: an enabled target runs now and then without events (a queue's
// watchdog), and an event that comes while fn runs is not lost.
func TestSweep(t *testing.T) {
	s := newSet(t, 8)
	fd := eventfd(t)
	var runs, got atomic.Int64
	var slow atomic.Bool
	tg, _ := s.Add(fd, func(int) bool {
		runs.Add(1)
		if slow.Load() {
			time.Sleep(20 * time.Millisecond) // the event below comes meanwhile
		}
		got.Add(int64(drain(fd)))
		return false
	})
	if err := tg.Enable(s.pollers[0].cpu); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two sweeps", func() bool { return runs.Load() >= 2 })

	// The event is taken (edge) by the poller while fn runs in the
	// sweep of another goroutine: exec must go round again.
	slow.Store(true)
	go tg.exec(-1)
	time.Sleep(5 * time.Millisecond)
	slow.Store(false)
	kicked := time.Now()
	kick(t, fd)
	waitFor(t, "the event's frame", func() bool { return got.Load() == 1 })
	if d := time.Since(kicked); d > SweepEvery/2 {
		t.Errorf("the event that came while fn ran was read %v later: only a sweep found it", d)
	}
	tg.Remove()
}

// TestFull: Add fails with ErrFull beyond maxTargets, and a removed
// target's slot is free again.
func TestFull(t *testing.T) {
	s := newSet(t, 1)
	fd := eventfd(t)
	a, err := s.Add(fd, func(int) bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(fd, func(int) bool { return false }); err != ErrFull {
		t.Fatalf("second Add: %v, want ErrFull", err)
	}
	a.Remove()
	if _, err := s.Add(fd, func(int) bool { return false }); err != nil {
		t.Fatalf("Add after Remove: %v", err)
	}
}
