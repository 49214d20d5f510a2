//go:build linux

package datapath

import (
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vswitch/vswitch/internal/cpupoll"
	"github.com/vswitch/vswitch/pkg/backend"
	"golang.org/x/sys/unix"
)

// streamingQueue is a polled queue that always has a frame and always
// streams: every poller run hands it over at once, and its Recv says idle
// at once, so the queue goes back and forth as fast as it can.
type streamingQueue struct {
	fd       int
	inUse    atomic.Int32 // TryRecv/Recv running (must never overlap)
	overlaps atomic.Int32
}

func (q *streamingQueue) enter() {
	if q.inUse.Add(1) != 1 {
		q.overlaps.Add(1)
	}
	time.Sleep(time.Microsecond)
	q.inUse.Add(-1)
}

func (q *streamingQueue) Recv(b *backend.Batch) (int, error) {
	q.enter()
	return 0, backend.ErrIdle
}
func (q *streamingQueue) Release(b *backend.Batch)     { b.Reset() }
func (q *streamingQueue) Send(f [][]byte) (int, error) { return len(f), nil }
func (q *streamingQueue) Stats() backend.QueueStats    { return backend.QueueStats{} }
func (q *streamingQueue) Close() error                 { return nil }
func (q *streamingQueue) PollFD() int                  { return q.fd }
func (q *streamingQueue) TryRecv(b *backend.Batch) (int, error) {
	q.enter()
	b.N = 1
	return 1, nil
}
func (q *streamingQueue) Streaming() bool  { return true }
func (q *streamingQueue) IncomingCPU() int { return -1 }

// TestPollingHandOver runs the workers' receive loop (receiver.next)
// against a queue that is handed over and given back as fast as possible:
// hand-overs must go on (a lost one leaves the queue with no receiver and
// the loop waiting for ever), the poller and the worker never receive at
// once, and the loop ends when stopped.
func TestPollingHandOver(t *testing.T) {
	ps, err := cpupoll.New(4, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	fd, err := unix.Eventfd(1, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK) // always readable: every Enable runs it at once
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	q := &streamingQueue{fd: fd}
	s := &Switch{pollers: ps, log: slog.Default()}
	b := backend.NewBatch(4)
	cpus := ps.CPUs()
	r := s.newReceiver(q, b, func() { q.Release(b) }, cpus[len(cpus)-1], false)
	defer r.remove()
	if r.err != nil || !r.polled {
		t.Fatalf("start: polled %v, %v", r.polled, r.err)
	}
	stop := make(chan struct{})
	type result struct {
		stopped bool
		err     error
	}
	done := make(chan result, 1)
	go func() {
		_, stopped, err := r.next(stop) // the queue never has frames for Recv: returns only when stopped
		done <- result{stopped, err}
	}()
	const rounds = 2000
	deadline := time.Now().Add(20 * time.Second)
	for s.handoffs.Load() < rounds {
		if time.Now().After(deadline) {
			t.Fatalf("hand-overs stopped at %d (target on CPU %d): the queue has no receiver", s.handoffs.Load(), r.pl.t.CPU())
		}
		time.Sleep(time.Millisecond)
	}
	close(stop)
	select {
	case res := <-done:
		if !res.stopped || res.err != nil {
			t.Errorf("next after stop: stopped %v, %v", res.stopped, res.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("next did not return after stop")
	}
	if n := q.overlaps.Load(); n != 0 {
		t.Errorf("the poller and the worker received at once %d times", n)
	}
}
