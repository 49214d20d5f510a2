package queuetest

import (
	"fmt"
	"sync"
	"time"

	"github.com/vswitch/vswitch/pkg/backend"
)

// Backend hands out in-memory queues by interface name. Every Open of the
// same (name, role) returns a new Queue; Iface gathers them per interface.
type Backend struct {
	mu     sync.Mutex
	ifaces map[string]*Iface
	// Missing makes Open fail for these names (interface absent).
	Missing map[string]bool
}

// New makes an empty backend.
func New() *Backend { return &Backend{ifaces: map[string]*Iface{}, Missing: map[string]bool{}} }

// SetMissing makes Open fail (or work again) for name, safely against
// concurrent Opens.
func (b *Backend) SetMissing(name string, missing bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if missing {
		b.Missing[name] = true
	} else {
		delete(b.Missing, name)
	}
}

// Name implements backend.Backend.
func (b *Backend) Name() string { return "memory" }

// Iface returns the interface's state (created on first use).
func (b *Backend) Iface(name string) *Iface {
	b.mu.Lock()
	defer b.mu.Unlock()
	i, ok := b.ifaces[name]
	if !ok {
		i = &Iface{name: name, cond: sync.NewCond(&sync.Mutex{})}
		b.ifaces[name] = i
	}
	return i
}

// Open implements backend.Backend.
func (b *Backend) Open(name string, cfg backend.QueueConfig) (backend.Queue, error) {
	b.mu.Lock()
	missing := b.Missing[name]
	b.mu.Unlock()
	if missing {
		return nil, fmt.Errorf("open %s: no such interface", name)
	}
	i := b.Iface(name)
	q := &Queue{iface: i, role: cfg.Role, rx: make(chan []byte, 4096), closed: make(chan struct{})}
	i.cond.L.Lock()
	i.queues = append(i.queues, q)
	i.cond.L.Unlock()
	return q, nil
}

// Iface is one fake interface: frames injected reach its RX queues (the
// first open RX queue, like a fanout of one); frames sent on any of its
// queues are collected in order.
type Iface struct {
	name   string
	cond   *sync.Cond
	queues []*Queue
	sent   [][]byte
}

// Inject queues frames for reception; it returns false if no queue receives.
func (i *Iface) Inject(frames ...[]byte) bool {
	i.cond.L.Lock()
	var q *Queue
	for _, c := range i.queues {
		if c.role != backend.RoleUplinkTX && !c.isClosed() {
			q = c
			break
		}
	}
	i.cond.L.Unlock()
	if q == nil {
		return false
	}
	for _, f := range frames {
		q.rx <- append([]byte(nil), f...)
	}
	return true
}

// Sent returns and clears the frames transmitted so far.
func (i *Iface) Sent() [][]byte {
	i.cond.L.Lock()
	defer i.cond.L.Unlock()
	s := i.sent
	i.sent = nil
	return s
}

// Wait waits until at least n frames were transmitted or the timeout passes,
// then returns and clears them.
func (i *Iface) Wait(n int, timeout time.Duration) [][]byte {
	deadline := time.Now().Add(timeout)
	for {
		i.cond.L.Lock()
		got := len(i.sent)
		i.cond.L.Unlock()
		if got >= n || time.Now().After(deadline) {
			return i.Sent()
		}
		time.Sleep(time.Millisecond)
	}
}

// OpenQueues counts queues not yet closed.
func (i *Iface) OpenQueues() int {
	i.cond.L.Lock()
	defer i.cond.L.Unlock()
	n := 0
	for _, q := range i.queues {
		if !q.isClosed() {
			n++
		}
	}
	return n
}

// Queue is an in-memory backend.Queue.
type Queue struct {
	iface     *Iface
	role      backend.Role
	rx        chan []byte
	closed    chan struct{}
	closeOnce sync.Once
	stats     backend.QueueStats
	batches   [2]uint64 // Recv and Send calls that moved frames: rx_batches, tx_batches
	mu        sync.Mutex
}

var _ backend.CustomStatser = (*Queue)(nil)

func (q *Queue) isClosed() bool {
	select {
	case <-q.closed:
		return true
	default:
		return false
	}
}

// Recv implements backend.Queue; each frame gets backend.Headroom bytes in front.
func (q *Queue) Recv(b *backend.Batch) (int, error) {
	var f []byte
	select {
	case f = <-q.rx:
	case <-q.closed:
		return 0, backend.ErrClosed
	}
	n := 0
	for {
		buf := make([]byte, backend.Headroom+len(f)+8)
		copy(buf[backend.Headroom:], f)
		b.Buf[n], b.Off[n], b.Len[n] = buf, backend.Headroom, len(f)
		n++
		if n == b.Cap() {
			break
		}
		select {
		case f = <-q.rx:
			continue
		default:
		}
		break
	}
	b.N = n
	q.mu.Lock()
	q.stats.RxPackets += uint64(n)
	q.batches[0]++
	q.mu.Unlock()
	return n, nil
}

// Release implements backend.Queue.
func (q *Queue) Release(b *backend.Batch) { b.Reset() }

// Send implements backend.Queue (frames are copied).
func (q *Queue) Send(frames [][]byte) (int, error) {
	if q.isClosed() {
		return 0, backend.ErrClosed
	}
	// Counted before the frames become visible, so a test that waited
	// for them finds them counted.
	q.mu.Lock()
	q.stats.TxPackets += uint64(len(frames))
	if len(frames) > 0 {
		q.batches[1]++
	}
	q.mu.Unlock()
	q.iface.cond.L.Lock()
	for _, f := range frames {
		q.iface.sent = append(q.iface.sent, append([]byte(nil), f...))
	}
	q.iface.cond.L.Unlock()
	return len(frames), nil
}

// Stats implements backend.Queue.
func (q *Queue) Stats() backend.QueueStats {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.stats
}

// CustomStats implements backend.CustomStatser with the two counters only
// this backend keeps, so tests can follow custom counters from a queue to
// wherever they are reported: rx_batches (Recv calls that returned frames)
// and tx_batches (Send calls given at least one frame).
func (q *Queue) CustomStats(dst []backend.Stat) []backend.Stat {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append(dst,
		backend.Stat{Name: "rx_batches", Value: q.batches[0]},
		backend.Stat{Name: "tx_batches", Value: q.batches[1]})
}

// Close implements backend.Queue.
func (q *Queue) Close() error {
	q.closeOnce.Do(func() { close(q.closed) })
	return nil
}
