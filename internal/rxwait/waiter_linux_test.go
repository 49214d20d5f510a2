//go:build linux

package rxwait

import (
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The waiter only needs a pollable fd that turns readable: an eventfd
// stands in for the socket, so these tests need no root.

type fakeSocket struct {
	t     *testing.T
	fd    int
	ready atomic.Bool
}

func newFakeSocket(t *testing.T) *fakeSocket {
	t.Helper()
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return &fakeSocket{t: t, fd: fd}
}

// post makes frames "arrive": ready turns true and the fd readable, as the
// kernel posts RX descriptors and then wakes the socket's waiters.
func (s *fakeSocket) post() {
	s.ready.Store(true)
	one := [8]byte{1}
	if _, err := unix.Write(s.fd, one[:]); err != nil {
		s.t.Error(err)
	}
}

// take consumes the frames: not ready, fd not readable.
func (s *fakeSocket) take() {
	s.ready.Store(false)
	var b [8]byte
	_, _ = unix.Read(s.fd, b[:])
}

func (s *fakeSocket) isReady(uintptr) bool { return s.ready.Load() }

func (s *fakeSocket) peek() bool { return s.ready.Load() }

func newTestWaiter(t *testing.T, s *fakeSocket, spreading *atomic.Int32) *Waiter {
	t.Helper()
	w, err := New(s.fd, spreading, nil, "fake")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		w.Close()
		w.Release()
	})
	return w
}

// waitAsync runs w.wait in a goroutine and reports its result.
func waitAsync(w *Waiter, ready func(uintptr) bool) <-chan error {
	done := make(chan error, 1)
	go func() { done <- w.Wait(ready) }()
	return done
}

func mustNotReturn(t *testing.T, done <-chan error, d time.Duration) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("wait returned (%v) with nothing to receive", err)
	case <-time.After(d):
	}
}

func mustReturn(t *testing.T, done <-chan error, want error) {
	t.Helper()
	select {
	case err := <-done:
		if !errors.Is(err, want) && err != want {
			t.Fatalf("wait returned %v, want %v", err, want)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("wait did not return")
	}
}

// A frame that arrives while the goroutine is parked in the netpoller wakes
// it; nothing else does.
func TestWaiterNetpollWakesOnFrame(t *testing.T) {
	s := newFakeSocket(t)
	w := newTestWaiter(t, s, new(atomic.Int32))
	for i := 0; i < 3; i++ {
		done := waitAsync(w, s.isReady)
		mustNotReturn(t, done, 30*time.Millisecond)
		s.post()
		mustReturn(t, done, nil)
		s.take()
	}
}

// Frames that are already there when wait starts are never slept on, even
// though the fd's edge happened long before (the netpoller is edge
// triggered).
func TestWaiterReadyAtOnce(t *testing.T) {
	s := newFakeSocket(t)
	w := newTestWaiter(t, s, new(atomic.Int32))
	s.post()
	time.Sleep(10 * time.Millisecond)
	mustReturn(t, waitAsync(w, s.isReady), nil)
	w.Received(SpreadBatch) // the same on the goroutine's own thread
	defer w.Unspread()
	mustReturn(t, waitAsync(w, s.isReady), nil)
}

// Close wakes a waiter in either way of waiting.
func TestWaiterCloseWakes(t *testing.T) {
	for _, spread := range []bool{false, true} {
		s := newFakeSocket(t)
		var spreading atomic.Int32
		w, err := New(s.fd, &spreading, nil, "fake")
		if err != nil {
			t.Fatal(err)
		}
		if spread {
			withProcs(t, 2)
			w.Received(SpreadBatch)
			if !w.spread {
				t.Fatal("a full batch did not make the waiter wait on its thread")
			}
		}
		done := waitAsync(w, s.isReady)
		mustNotReturn(t, done, 30*time.Millisecond)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		mustReturn(t, done, ErrClosed)
		w.Release()
		if got := spreading.Load(); got != 0 {
			t.Errorf("spreading = %d after release, want 0", got)
		}
		// A wait after close returns at once.
		if err := w.Wait(s.isReady); err != ErrClosed {
			t.Errorf("wait after close: %v, want ErrClosed", err)
		}
	}
}

// A backlog moves the queue to its own thread, with the netpoller's view of
// the socket switched off; SpreadIdle without frames moves it back.
func TestWaiterSpreadsUnderLoadAndReturns(t *testing.T) {
	withProcs(t, 2)
	s := newFakeSocket(t)
	var spreading atomic.Int32
	w := newTestWaiter(t, s, &spreading)
	w.Received(SpreadBatch - 1)
	if w.spread {
		t.Fatal("a small batch made the waiter spread")
	}
	if !epollSees(t, w, s) {
		t.Fatal("netpoller does not watch the socket")
	}
	w.Received(SpreadBatch)
	if !w.spread || spreading.Load() != 1 {
		t.Fatalf("spread %v, spreading %d after a full batch", w.spread, spreading.Load())
	}
	if epollSees(t, w, s) {
		t.Error("netpoller still watches the socket of a queue waiting on its own thread")
	}
	// A frame within SpreadIdle wakes the thread's poll. (A busy machine
	// may delay the post past SpreadIdle: try a few times.)
	woke := false
	for try := 0; try < 10 && !woke; try++ {
		res := make(chan bool, 1)
		go func() {
			ok, err := w.PollWait(s.isReady)
			if err != nil {
				t.Error(err)
			}
			res <- ok
		}()
		time.Sleep(100 * time.Microsecond)
		s.post()
		woke = <-res
		s.take()
	}
	if !woke {
		t.Fatal("a frame did not wake the poll within SpreadIdle, 10 times")
	}
	if !w.spread {
		t.Fatal("left the thread although frames kept coming")
	}
	// Idle for longer: back to the netpoller, which then delivers.
	done := waitAsync(w, s.isReady)
	time.Sleep(3 * SpreadIdle)
	mustNotReturn(t, done, 10*time.Millisecond)
	s.post()
	mustReturn(t, done, nil)
	if w.spread || spreading.Load() != 0 {
		t.Errorf("spread %v, spreading %d after an idle spell, want back in the netpoller", w.spread, spreading.Load())
	}
	s.take()
	if !epollSees(t, w, s) {
		t.Error("netpoller does not watch the socket again")
	}
}

// One P always stays free for the netpoller: with GOMAXPROCS 2, one queue
// may wait on its thread, not two.
func TestWaiterSpreadLeavesAPForTheNetpoller(t *testing.T) {
	withProcs(t, 2)
	s1, s2 := newFakeSocket(t), newFakeSocket(t)
	var spreading atomic.Int32 // one Backend's
	w1, w2 := newTestWaiter(t, s1, &spreading), newTestWaiter(t, s2, &spreading)
	w1.Received(64)
	w2.Received(64)
	if !w1.spread || w2.spread {
		t.Fatalf("spread %v, %v: want only the first", w1.spread, w2.spread)
	}
	w1.Unspread()
	w2.Received(64)
	if !w2.spread {
		t.Error("the second queue cannot spread after the first went back")
	}
	w2.Unspread()
	runtime.GOMAXPROCS(1)
	w1.Received(64)
	if w1.spread {
		t.Error("spread with GOMAXPROCS 1: nothing left for the netpoller")
	}
}

// Waiting allocates nothing (on the path that finds frames at once; the
// netpoller's park path is covered by the Recv benchmarks).
func TestWaiterAllocs(t *testing.T) {
	s := newFakeSocket(t)
	w := newTestWaiter(t, s, new(atomic.Int32))
	s.post()
	ready := s.isReady // made once, as Queue does
	if n := testing.AllocsPerRun(100, func() { _ = w.Wait(ready) }); n != 0 {
		t.Errorf("netpoller wait: %v allocs, want 0", n)
	}
	withProcs(t, 2)
	w.Received(SpreadBatch)
	defer w.Unspread()
	if n := testing.AllocsPerRun(100, func() { _ = w.Wait(ready) }); n != 0 {
		t.Errorf("thread wait: %v allocs, want 0", n)
	}
}

// epollSees reports whether the waiter's epoll instance reports the socket
// readable (it is made readable for the check and drained after).
func epollSees(t *testing.T, w *Waiter, s *fakeSocket) bool {
	t.Helper()
	one := [8]byte{1}
	if _, err := unix.Write(s.fd, one[:]); err != nil {
		t.Fatal(err)
	}
	defer s.take()
	var ev [1]unix.EpollEvent
	n, err := unix.EpollWait(w.ep, ev[:], 0)
	if err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// withProcs sets GOMAXPROCS for the test.
func withProcs(t *testing.T, n int) {
	t.Helper()
	old := runtime.GOMAXPROCS(n)
	t.Cleanup(func() { runtime.GOMAXPROCS(old) })
}

// Park with a timeout returns ErrTimeout after at least half of it, and a
// frame before then still wakes it at once.
func TestParkTimeout(t *testing.T) {
	s := newFakeSocket(t)
	w := newTestWaiter(t, s, new(atomic.Int32))
	const timeout = 100 * time.Millisecond
	t0 := time.Now()
	err := w.Park(s.isReady, timeout)
	took := time.Since(t0)
	if err != ErrTimeout {
		t.Fatalf("Park with nothing to receive: %v, want ErrTimeout", err)
	}
	if took < timeout/2 {
		t.Errorf("Park timed out after %v, want at least %v", took, timeout/2)
	}
	// The deadline passed: the next Park sets a new one, it does not time
	// out at once.
	done := make(chan error, 1)
	go func() { done <- w.Park(s.isReady, timeout) }()
	mustNotReturn(t, done, timeout/4)
	s.post()
	mustReturn(t, done, nil)
	s.take()
	// Without a timeout the deadline goes.
	done = make(chan error, 1)
	go func() { done <- w.Park(s.isReady, 0) }()
	mustNotReturn(t, done, timeout+timeout/2)
	s.post()
	mustReturn(t, done, nil)
}

// A Park that waited counts as a trip through the scheduler; one that found
// frames at once does not.
func TestParkIsASchedulingPoint(t *testing.T) {
	s := newFakeSocket(t)
	w := newTestWaiter(t, s, new(atomic.Int32))
	s.post()
	if err := w.Park(s.isReady, 0); err != nil {
		t.Fatal(err)
	}
	if w.yielded != 0 {
		t.Errorf("a Park that did not wait moved the last scheduling point to %v", w.yielded)
	}
	s.take()
	done := make(chan error, 1)
	go func() { done <- w.Park(s.isReady, 0) }()
	mustNotReturn(t, done, 10*time.Millisecond)
	s.post()
	mustReturn(t, done, nil)
	if w.yielded == 0 {
		t.Error("a Park that waited is not a scheduling point")
	}
}

// Yield lets the goroutines waiting for the P run once YieldEvery passed
// since the last scheduling point, and not before.
func TestYield(t *testing.T) {
	withProcs(t, 1)
	s := newFakeSocket(t)
	w := newTestWaiter(t, s, new(atomic.Int32))
	var ran atomic.Bool
	w.yielded = time.Since(w.base) // just went through the scheduler
	go ran.Store(true)             // runnable on our only P
	w.Yield()
	if ran.Load() {
		t.Error("Yield within YieldEvery of the last scheduling point let another goroutine run")
	}
	for try := 0; try < 3 && !ran.Load(); try++ { // see TestReceivedYields
		w.yielded -= 2 * YieldEvery
		w.Yield()
	}
	if !ran.Load() {
		t.Error("Yield after YieldEvery did not let the runnable goroutine run")
	}
	if since := time.Since(w.base) - w.yielded; since > YieldEvery {
		t.Errorf("Yield did not note its scheduling point (%v ago)", since)
	}
}

// Received is a scheduling point too: a goroutine that finds frames every
// time never waits.
func TestReceivedYields(t *testing.T) {
	withProcs(t, 1)
	s := newFakeSocket(t)
	w := newTestWaiter(t, s, new(atomic.Int32))
	var ran atomic.Bool
	w.yielded = time.Since(w.base) - 2*YieldEvery
	go ran.Store(true)
	// runtime.Gosched lets the runnable goroutine run, unless the
	// scheduler's fairness tick (one schedule in 61 looks at the global
	// queue first) picks the yielding goroutine itself: it cannot do so
	// three times in a row.
	for try := 0; try < 3 && !ran.Load(); try++ {
		w.yielded = time.Since(w.base) - 2*YieldEvery
		w.Received(1)
	}
	if !ran.Load() {
		t.Error("Received after YieldEvery without a scheduling point did not yield")
	}
}

// Parking allocates nothing either, the timeout's deadline included.
func TestParkAllocs(t *testing.T) {
	s := newFakeSocket(t)
	w := newTestWaiter(t, s, new(atomic.Int32))
	s.post()
	ready := s.isReady
	if n := testing.AllocsPerRun(100, func() { _ = w.Park(ready, 500*time.Millisecond) }); n != 0 {
		t.Errorf("Park with a timeout: %v allocs, want 0", n)
	}
}

// A batch that follows the previous one within BusyGap is busy; BusyStreak
// of them in a row (a stream) move the queue to its own thread. An
// isolated frame, or a request and its answer, do neither.
func TestBusy(t *testing.T) {
	withProcs(t, 2)
	s := newTestWaiter(t, newFakeSocket(t), new(atomic.Int32))
	s.Received(1)
	if s.Busy() || s.Spread() {
		t.Fatalf("the first batch ever: busy %v, spread %v", s.Busy(), s.Spread())
	}
	s.lastBatch = time.Since(s.base) - 4*BusyGap
	s.Received(1)
	if s.Busy() || s.Spread() {
		t.Fatalf("a frame 4 BusyGap after the previous one: busy %v, spread %v", s.Busy(), s.Spread())
	}
	for i := 1; i <= BusyStreak; i++ {
		s.lastBatch = time.Since(s.base) - BusyGap/4
		s.Received(1)
		if !s.Busy() {
			t.Fatalf("frame %d of a stream, BusyGap/4 after the previous one: not busy", i)
		}
		if spread := i >= BusyStreak; s.Spread() != spread {
			t.Fatalf("frame %d of a stream: spread %v, want %v", i, s.Spread(), spread)
		}
	}
	s.Unspread()
	s.lastBatch = time.Since(s.base) - 4*BusyGap
	s.Received(1)
	if s.Busy() {
		t.Fatal("a frame after a pause is busy")
	}
}
