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

// TestPollingHandOver runs the workers' loop (egress.go, ingress.go)
// against a queue that is handed over and given back as fast as possible:
// the worker must never wait for a hand-over that will not come (a queue
// nobody receives), and the poller and the worker never receive at once.
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
	pl := s.newPolling(q, b, func() { q.Release(b) }, cpus[len(cpus)-1], false)
	defer pl.remove()
	stop := make(chan struct{})
	polled, err := pl.start()
	if err != nil || !polled {
		t.Fatalf("start: %v, %v", polled, err)
	}
	const rounds = 4000
	deadline := time.AfterFunc(20*time.Second, func() { close(stop) })
	defer deadline.Stop()
	for i := 0; i < rounds; i++ {
		if polled {
			ok, err := pl.wait(stop)
			if !ok {
				t.Fatalf("round %d: no hand-over came (target on CPU %d): the queue has no receiver", i, pl.t.CPU())
			}
			if err != nil {
				t.Fatal(err)
			}
			polled = false
			continue
		}
		if _, err := q.Recv(b); err != backend.ErrIdle {
			t.Fatal(err)
		}
		if err := pl.giveBack(); err != nil {
			t.Fatal(err)
		}
		polled = true
	}
	if n := q.overlaps.Load(); n != 0 {
		t.Errorf("the poller and the worker received at once %d times", n)
	}
	if got := s.handoffs.Load(); got < rounds/2 {
		t.Errorf("%d hand-overs counted, want %d", got, rounds/2)
	}
}
