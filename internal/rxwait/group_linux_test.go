//go:build linux

package rxwait

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func newTestGroup(t *testing.T, budget time.Duration) *Group {
	t.Helper()
	g, err := NewGroup(budget)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func newGroupWaiter(t *testing.T, g *Group, s *fakeSocket) *Waiter {
	t.Helper()
	w, err := New(s.fd, new(atomic.Int32), g, "fake")
	if err != nil {
		t.Fatal(err)
	}
	w.SetPeek(s.peek)
	t.Cleanup(func() {
		w.Close()
		w.Release()
	})
	return w
}

// postLater posts frames on s after d, from a goroutine the test waits for
// at its end (a post after the test ended would write to a closed fd).
func postLater(t *testing.T, s *fakeSocket, d time.Duration) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(d)
		s.ready.Store(true)
		one := [8]byte{1}
		_, _ = unix.Write(s.fd, one[:])
	}()
	t.Cleanup(wg.Wait)
}

// needTwoPs skips a test whose spinner holds the only P: the goroutine
// that posts the frame it waits for could not run meanwhile.
func needTwoPs(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("needs GOMAXPROCS >= 2: the spinner holds a P")
	}
}

// A spin ends as soon as another member's socket gets frames, long before
// its budget; with nothing coming it lasts the budget and reports a miss.
func TestGroupSpinEndsOnOtherQueue(t *testing.T) {
	needTwoPs(t)
	g := newTestGroup(t, MaxBusyPoll)
	a, b := newFakeSocket(t), newFakeSocket(t)
	wa := newGroupWaiter(t, g, a)
	newGroupWaiter(t, g, b)

	start := time.Now()
	if g.spin(wa.ep, a.peek, time.Now()) {
		t.Fatal("spin reported frames with none coming")
	}
	if d := time.Since(start); d < MaxBusyPoll {
		t.Fatalf("a spin with nothing coming lasted %v, want its budget %v", d, MaxBusyPoll)
	}

	postLater(t, b, 200*time.Microsecond)
	// The budget is a millisecond: the frame must be seen well within it,
	// or, on a loaded machine that delayed the poster, by a later spin
	// (or before one, as ready); spent credit grows back meanwhile.
	deadline := time.Now().Add(5 * time.Second)
	for !g.spin(wa.ep, a.peek, time.Now()) {
		if time.Now().After(deadline) {
			t.Fatalf("no spin saw the other queue's frame: %+v", g.Stats())
		}
		if g.Stats().Skipped > 0 {
			time.Sleep(SpinShare * MaxBusyPoll)
		}
	}
	st := g.Stats()
	if st.Hits+st.Ready != 1 || st.Spun < MaxBusyPoll {
		t.Fatalf("stats %+v: want the frame seen once (a hit, or ready), at least %v spun", st, MaxBusyPoll)
	}
}

// Work that is there before the spin (a reflected frame on another queue,
// frames in the spinner's own ring) ends it before it starts: counted as
// ready, no spin, no credit spent. The spinner's own edge from before (the
// frames it has just taken) does not end it.
func TestGroupSpinReady(t *testing.T) {
	g := newTestGroup(t, 300*time.Microsecond)
	before := time.Now() // the frames handled before each spin: older than any miss, no back-off
	a, b := newFakeSocket(t), newFakeSocket(t)
	wa := newGroupWaiter(t, g, a)
	newGroupWaiter(t, g, b)
	a.post() // the frame the queue has just received
	a.take()
	if g.spin(wa.ep, a.peek, before) {
		t.Fatal("the spinner's own stale edge ended its spin")
	}
	if st := g.Stats(); st.Misses != 1 || st.Spun < 300*time.Microsecond {
		t.Fatalf("stats %+v: want one miss of the whole budget", st)
	}
	a.post()
	a.post() // no new edge for the Group: its own ring is what tells
	if !g.spin(wa.ep, a.peek, before) {
		t.Fatal("frames in the spinner's own ring did not end its spin")
	}
	a.take()
	b.post()
	if !g.spin(wa.ep, a.peek, before) {
		t.Fatal("frames waiting on another queue did not end the spin")
	}
	if st := g.Stats(); st.Spins() != 1 || st.Ready != 2 || st.Hits != 0 {
		t.Fatalf("stats %+v: want 2 ready, the first spin only", st)
	}
	b.take()
	if g.spin(wa.ep, a.peek, before) || g.Stats().Misses != 2 {
		t.Fatalf("the edge was seen twice, or the spin after it was not made: %+v", g.Stats())
	}
}

// Spinning is bounded to a share of a CPU: misses in a row spend the
// credit, then spins are skipped (and cost nothing) until it grows back.
func TestGroupSpinCredit(t *testing.T) {
	budget := 500 * time.Microsecond
	g := newTestGroup(t, budget)
	a := newFakeSocket(t)
	wa := newGroupWaiter(t, g, a)
	// The CPU the spins use, not their wall time: a loaded machine
	// preempts a spin, which then lasts longer but burns no more.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu0 := threadCPU(t)
	start := time.Now()
	for i := 0; i < 3*SpinCredit; i++ {
		g.spin(wa.ep, a.peek, start) // frames older than the misses: no back-off
	}
	elapsed, cpu := time.Since(start), threadCPU(t)-cpu0
	st := g.Stats()
	if st.Skipped == 0 {
		t.Fatalf("%d misses in a row were never skipped: %+v", 3*SpinCredit, st)
	}
	// What was spun is the starting credit plus a tenth of the time it
	// took, give or take one spin's overshoot.
	limit := SpinCredit*budget + elapsed/SpinShare + 2*budget
	if cpu > limit {
		t.Fatalf("spins used %v of CPU in %v, over the credit's bound %v (%+v)", cpu, elapsed, limit, st)
	}
	// The credit grows back (from however far a preempted spin took it
	// below zero): spins resume.
	before := g.Stats().Spins()
	for deadline := time.Now().Add(5 * time.Second); g.Stats().Spins() == before; {
		if time.Now().After(deadline) {
			t.Fatalf("no spin once the credit had had 5 s to grow back: %+v", g.Stats())
		}
		time.Sleep(2 * SpinShare * budget)
		g.spin(wa.ep, a.peek, time.Now())
	}
}

// A spin that missed what came right after it (within the budget) did not
// pay, and may have held it up (a VM thread woken on the spinning CPU):
// the next BackoffSpins spins are not made. Work that comes later (the
// next request of a ping-pong) leaves spinning on, and so do frames from
// before the miss.
func TestGroupSpinBackoff(t *testing.T) {
	budget := MaxBusyPoll // long: "right after" must hold on a loaded machine
	g := newTestGroup(t, budget)
	a, b := newFakeSocket(t), newFakeSocket(t)
	wa := newGroupWaiter(t, g, a)
	newGroupWaiter(t, g, b)
	old := time.Now()

	if g.spin(wa.ep, a.peek, old) {
		t.Fatal("a spin with nothing coming hit")
	}
	if g.spin(wa.ep, a.peek, old) || g.Stats().Misses != 2 {
		t.Fatalf("frames from before the miss stopped the spins: %+v", g.Stats())
	}
	time.Sleep(2 * budget)
	if g.spin(wa.ep, a.peek, time.Now()) || g.Stats().Misses != 3 || g.Stats().BackedOff != 0 {
		t.Fatalf("a spin after frames that came long after a miss was not made: %+v", g.Stats())
	}
	// Frames right after that miss: back off.
	for i := 0; i < BackoffSpins/2; i++ {
		if g.spin(wa.ep, a.peek, time.Now()) {
			t.Fatal("a backed-off spin hit")
		}
	}
	// Ready work is seen while backing off, and does not count.
	b.post()
	if !g.spin(wa.ep, a.peek, time.Now()) {
		t.Fatal("ready work not seen while backing off")
	}
	b.take()
	for i := 0; i < BackoffSpins/2; i++ {
		g.spin(wa.ep, a.peek, time.Now())
	}
	if st := g.Stats(); st.BackedOff != BackoffSpins || st.Ready != 1 || st.Misses != 3 {
		t.Fatalf("stats %+v: want %d spins backed off, 1 ready", st, BackoffSpins)
	}
	// Then the spins resume.
	g.spin(wa.ep, a.peek, old)
	if st := g.Stats(); st.Misses != 4 {
		t.Fatalf("stats %+v: spins did not resume after the back-off", st)
	}
}

// Only one goroutine spins at a time: a second one sleeps at once.
func TestGroupOneSpinner(t *testing.T) {
	g := newTestGroup(t, MaxBusyPoll)
	newGroupWaiter(t, g, newFakeSocket(t))
	wb := newGroupWaiter(t, g, newFakeSocket(t))
	g.spinning.Store(true) // as if the first waiter spun now
	start := time.Now()
	if g.spin(wb.ep, nothing, time.Now()) || time.Since(start) > MaxBusyPoll/2 {
		t.Fatal("a second goroutine spun beside the first")
	}
	g.spinning.Store(false)
	if st := g.Stats(); st.Spins() != 0 || st.Ready != 0 {
		t.Fatalf("stats %+v: the refused spin was counted", st)
	}
}

// Park spins only after the queue received frames (Received), so that the
// answer coming back on another queue is seen; a Park without news (the
// jam watchdog's) goes straight to sleep.
func TestParkSpinsAfterFrames(t *testing.T) {
	g := newTestGroup(t, MaxBusyPoll)
	a, b := newFakeSocket(t), newFakeSocket(t)
	wa := newGroupWaiter(t, g, a)
	newGroupWaiter(t, g, b)

	// No frames received: Park sleeps without spinning (and times out).
	if err := wa.Park(a.isReady, 20*time.Millisecond); err != ErrTimeout {
		t.Fatalf("Park: %v, want ErrTimeout", err)
	}
	if st := g.Stats(); st.Spins() != 0 {
		t.Fatalf("a Park without news spun: %+v", st)
	}

	needTwoPs(t)
	wa.Received(1)
	postLater(t, b, 200*time.Microsecond)
	if err := wa.Park(a.isReady, 50*time.Millisecond); err != ErrTimeout {
		t.Fatalf("Park: %v, want ErrTimeout (its own socket got nothing)", err)
	}
	if st := g.Stats(); st.Spins() != 1 {
		t.Fatalf("Park after frames: %+v, want one spin", st)
	}
	// Its frames went stale on its own thread: back in the netpoller it
	// does not spin.
	wa.Received(SpreadBatch)
	wa.Unspread()
	if err := wa.Park(a.isReady, 20*time.Millisecond); err != ErrTimeout {
		t.Fatalf("Park: %v, want ErrTimeout", err)
	}
	if st := g.Stats(); st.Spins() != 1 {
		t.Fatalf("a Park after Unspread spun: %+v", st)
	}
}

// nothing is the peek of a ring that never has frames.
func nothing() bool { return false }

func TestCheckBudget(t *testing.T) {
	for _, c := range []struct {
		d  time.Duration
		ok bool
	}{{0, true}, {DefaultBusyPoll, true}, {MaxBusyPoll, true}, {-time.Microsecond, false}, {MaxBusyPoll + 1, false}} {
		if err := CheckBudget(c.d); (err == nil) != c.ok {
			t.Errorf("CheckBudget(%v) = %v", c.d, err)
		}
		g, err := NewGroup(c.d)
		if (err == nil) != c.ok {
			t.Errorf("NewGroup(%v) = %v", c.d, err)
		}
		g.Close()
	}
}

// threadCPU is the CPU time the calling thread has used.
func threadCPU(t *testing.T) time.Duration {
	t.Helper()
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
