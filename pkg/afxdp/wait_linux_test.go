//go:build linux

package afxdp

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

func newTestWaiter(t *testing.T, s *fakeSocket, spreading *atomic.Int32) *rxWaiter {
	t.Helper()
	w, err := newRXWaiter(s.fd, spreading, "fake")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		w.close()
		w.release()
	})
	return w
}

// waitAsync runs w.wait in a goroutine and reports its result.
func waitAsync(w *rxWaiter, ready func(uintptr) bool) <-chan error {
	done := make(chan error, 1)
	go func() { done <- w.wait(ready) }()
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
	w.received(spreadBatch) // the same on the goroutine's own thread
	defer w.unspread()
	mustReturn(t, waitAsync(w, s.isReady), nil)
}

// Close wakes a waiter in either way of waiting.
func TestWaiterCloseWakes(t *testing.T) {
	for _, spread := range []bool{false, true} {
		s := newFakeSocket(t)
		var spreading atomic.Int32
		w, err := newRXWaiter(s.fd, &spreading, "fake")
		if err != nil {
			t.Fatal(err)
		}
		if spread {
			withProcs(t, 2)
			w.received(spreadBatch)
			if !w.spread {
				t.Fatal("a full batch did not make the waiter wait on its thread")
			}
		}
		done := waitAsync(w, s.isReady)
		mustNotReturn(t, done, 30*time.Millisecond)
		if err := w.close(); err != nil {
			t.Fatal(err)
		}
		mustReturn(t, done, errWaitClosed)
		w.release()
		if got := spreading.Load(); got != 0 {
			t.Errorf("spreading = %d after release, want 0", got)
		}
		// A wait after close returns at once.
		if err := w.wait(s.isReady); err != errWaitClosed {
			t.Errorf("wait after close: %v, want errWaitClosed", err)
		}
	}
}

// A backlog moves the queue to its own thread, with the netpoller's view of
// the socket switched off; spreadIdle without frames moves it back.
func TestWaiterSpreadsUnderLoadAndReturns(t *testing.T) {
	withProcs(t, 2)
	s := newFakeSocket(t)
	var spreading atomic.Int32
	w := newTestWaiter(t, s, &spreading)
	w.received(spreadBatch - 1)
	if w.spread {
		t.Fatal("a small batch made the waiter spread")
	}
	if !epollSees(t, w, s) {
		t.Fatal("netpoller does not watch the socket")
	}
	w.received(spreadBatch)
	if !w.spread || spreading.Load() != 1 {
		t.Fatalf("spread %v, spreading %d after a full batch", w.spread, spreading.Load())
	}
	if epollSees(t, w, s) {
		t.Error("netpoller still watches the socket of a queue waiting on its own thread")
	}
	// A frame within spreadIdle wakes the thread's poll. (A busy machine
	// may delay the post past spreadIdle: try a few times.)
	woke := false
	for try := 0; try < 10 && !woke; try++ {
		res := make(chan bool, 1)
		go func() {
			ok, err := w.pollWait(s.isReady)
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
		t.Fatal("a frame did not wake the poll within spreadIdle, 10 times")
	}
	if !w.spread {
		t.Fatal("left the thread although frames kept coming")
	}
	// Idle for longer: back to the netpoller, which then delivers.
	done := waitAsync(w, s.isReady)
	time.Sleep(3 * spreadIdle)
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
	w1.received(64)
	w2.received(64)
	if !w1.spread || w2.spread {
		t.Fatalf("spread %v, %v: want only the first", w1.spread, w2.spread)
	}
	w1.unspread()
	w2.received(64)
	if !w2.spread {
		t.Error("the second queue cannot spread after the first went back")
	}
	w2.unspread()
	runtime.GOMAXPROCS(1)
	w1.received(64)
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
	if n := testing.AllocsPerRun(100, func() { _ = w.wait(ready) }); n != 0 {
		t.Errorf("netpoller wait: %v allocs, want 0", n)
	}
	withProcs(t, 2)
	w.received(spreadBatch)
	defer w.unspread()
	if n := testing.AllocsPerRun(100, func() { _ = w.wait(ready) }); n != 0 {
		t.Errorf("thread wait: %v allocs, want 0", n)
	}
}

// epollSees reports whether the waiter's epoll instance reports the socket
// readable (it is made readable for the check and drained after).
func epollSees(t *testing.T, w *rxWaiter, s *fakeSocket) bool {
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

// peek sees entries the consumer has not taken, without taking them.
func TestRingPeek(t *testing.T) {
	var prod, cons, flags uint32
	r := ringHead{producer: &prod, consumer: &cons, flags: &flags, mask: 3, size: 4}
	if r.peek() {
		t.Fatal("empty ring: peek true")
	}
	atomic.StoreUint32(&prod, 2)
	if !r.peek() {
		t.Fatal("two entries posted: peek false")
	}
	if n := r.consAvail(1); n != 1 {
		t.Fatalf("consAvail(1) = %d", n)
	}
	r.consRelease(1)
	if !r.peek() {
		t.Fatal("one entry left (cached): peek false")
	}
	r.consRelease(r.consAvail(4))
	if r.peek() || cons != 2 {
		t.Fatalf("all taken: peek %v, consumer %d", r.peek(), cons)
	}
}
