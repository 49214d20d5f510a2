package datapath

import (
	"errors"
	"sync"

	"github.com/vswitch/vswitch/internal/cpupoll"
	"github.com/vswitch/vswitch/pkg/backend"
)

// polling is how a worker's queue is received with CPU pollers
// (Config.CPUPoll): at light load by the poller of the CPU where its
// frames arrive, which runs the worker's pipeline itself, on the thread
// the frame woke without an inter-processor interrupt (internal/cpupoll
// says why); while frames stream, by the worker's goroutine in Recv, on a
// thread of its own (rxwait's spread), until Recv returns
// backend.ErrIdle and the poller takes the queue back.
//
// The queue, its batch and the pipeline's state belong to one side at a
// time. Only a poller's run hands the queue to the goroutine (own set and
// the target disabled under mu, then one message on handoff), and the
// goroutine knows it owns the queue by that message alone, never by
// reading own; only the goroutine gives it back (own cleared and the
// target enabled under mu). A run checks own under mu first: a run that
// comes after a hand-over (an event a poller had taken already, a sweep)
// does nothing, and one that comes after a give-back is legitimate.
// Every hand-over is a run, and runs of a target never overlap, so none
// is under way while the goroutine owns the queue.
type polling struct {
	s      *Switch
	q      backend.Polled
	t      *cpupoll.Target
	b      *backend.Batch
	work   func() // the worker's pipeline for the frames in b; releases b
	follow bool   // ports: move to the CPU that receives the frames
	home   int    // the CPU whose poller takes the queue back

	mu      sync.Mutex // own with the target's enabling
	own     bool
	handoff chan error // one message per hand-over: nil (a stream began) or why
}

// receiver is a worker's receive side (egress and ingress workers alike):
// Recv on the worker's goroutine, and with CPU pollers the wait for their
// hand-overs in between (polling).
type receiver struct {
	pl     *polling // nil: no pollers
	q      backend.Queue
	b      *backend.Batch
	polled bool  // the pollers have the queue: wait for a hand-over
	err    error // start's or a give-back's failure, for the next call
	// failing: the last receive failed (the worker says so once);
	// cleared by one that did not, and by a give-back.
	failing bool
}

// newReceiver makes a worker's receiver for q into b; with CPU pollers
// they take the queue at once (newPolling says what work, home and follow
// are).
func (s *Switch) newReceiver(q backend.Queue, b *backend.Batch, work func(), home int, follow bool) *receiver {
	r := &receiver{pl: s.newPolling(q, b, work, home, follow), q: q, b: b}
	r.polled, r.err = r.pl.start()
	return r
}

// next receives the next batch into b and returns its size (b to be
// released after, even for 0), or the receive's error (nothing to
// release), or stopped when stop was closed while the pollers had the
// queue.
func (r *receiver) next(stop <-chan struct{}) (n int, stopped bool, err error) {
	for {
		switch {
		case r.err != nil:
			err, r.err = r.err, nil
			return 0, false, err
		case r.polled:
			ok, err := r.pl.wait(stop)
			if !ok {
				return 0, true, nil
			}
			r.polled = false // a stream, or an error: ours now
			if err != nil {
				return 0, false, err
			}
		default:
			n, err := r.q.Recv(r.b)
			if errors.Is(err, backend.ErrIdle) {
				if err = r.pl.giveBack(); err == nil {
					r.failing = false
					r.polled = true
					continue
				}
			}
			if err == nil {
				r.failing = false
			}
			return n, false, err
		}
	}
}

// remove takes the queue from the pollers for good (polling.remove).
func (r *receiver) remove() { r.pl.remove() }

// newPolling returns q's polling, or nil when the switch has no pollers
// or q cannot be polled (the worker then receives with Recv as ever).
// home is the poller to start on; follow moves the queue to the CPU that
// received its last frame. The worker must call start before its loop.
func (s *Switch) newPolling(q backend.Queue, b *backend.Batch, work func(), home int, follow bool) *polling {
	pq, ok := q.(backend.Polled)
	if s.pollers == nil || !ok {
		return nil
	}
	pl := &polling{s: s, q: pq, b: b, work: work, follow: follow, home: home, own: true, handoff: make(chan error, 1)}
	t, err := s.pollers.Add(pq.PollFD(), pl.run)
	if err != nil {
		// Cannot happen (a target per port slot and uplink queue): the
		// queue's Recv returns ErrIdle, which the worker then treats as
		// an error (errNoPoller).
		s.log.Error("no CPU poller for a queue opened to be polled", "err", err)
		return nil
	}
	pl.t = t
	return pl
}

// errNoPoller is a worker's error for a polled queue's ErrIdle when it has
// no poller to give the queue to (newPolling failed).
var errNoPoller = errors.New("queue idle, but no CPU poller takes it")

// start hands the queue to its poller: true when the worker must wait
// for a hand-over (polled), false when it receives with Recv (no pollers,
// or enabling failed: err).
func (pl *polling) start() (bool, error) {
	if pl == nil {
		return false, nil
	}
	if err := pl.giveBack(); err != nil {
		return false, err
	}
	return true, nil
}

// run is the poller's work (cpupoll's fn): one batch through the
// worker's pipeline.
func (pl *polling) run(cpu int) bool {
	pl.mu.Lock()
	own := pl.own
	pl.mu.Unlock()
	if own {
		return false
	}
	n, err := pl.q.TryRecv(pl.b)
	if err != nil {
		pl.q.Release(pl.b)
		pl.handOff(err)
		return false
	}
	if n == 0 {
		return false
	}
	pl.work()
	if pl.q.Streaming() {
		pl.handOff(nil)
		return false
	}
	if pl.follow {
		if c := pl.q.IncomingCPU(); c >= 0 && c != cpu {
			pl.home = c
			if err := pl.t.Move(c); err != nil {
				pl.handOff(err) // on no poller now: the worker retries
				return false
			}
		}
	}
	return n == pl.b.Cap()
}

// handOff gives the queue to the worker's goroutine.
func (pl *polling) handOff(err error) {
	pl.mu.Lock()
	pl.own = true
	pl.t.Disable()
	pl.mu.Unlock()
	pl.s.handoffs.Add(1)
	select {
	case pl.handoff <- err: // one hand-over per give-back: never full
	default:
		// Cannot happen; were it to, the message is lost and this queue
		// has no receiver, rather than the poller blocking with the
		// target's run lock held (and Remove, and the switch, behind it).
		pl.s.log.Error("CPU poller: a queue handed over twice without a give-back")
	}
}

// wait blocks the worker's goroutine until the poller hands it the queue
// (true, with the reason if an error) or stop is closed (false).
func (pl *polling) wait(stop <-chan struct{}) (bool, error) {
	select {
	case err := <-pl.handoff:
		return true, err
	case <-stop:
		return false, nil
	}
}

// giveBack hands the queue to the poller of the CPU that received its
// last frame (ports) or of its home CPU; it runs at once if frames are
// there already. On error the queue stays the goroutine's.
func (pl *polling) giveBack() error {
	if pl == nil {
		return errNoPoller
	}
	if pl.follow {
		if c := pl.q.IncomingCPU(); c >= 0 {
			pl.home = c
		}
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	pl.own = false
	if err := pl.t.Enable(pl.home); err != nil {
		pl.own = true
		return err
	}
	return nil
}

// remove takes the queue from the pollers for good, once the worker
// stops; a run in progress finishes first. The queue may be closed
// already: the target's EPOLL_CTL_DEL may then fail, and a stray event
// may still carry its (freed, perhaps reused) token, which runs another
// target's fn for nothing (its own check of own and its empty ring); and
// no new descriptor is watched before this returns (the switch opens
// queues under its lock, which the closer holds until the worker is
// done).
func (pl *polling) remove() {
	if pl != nil {
		pl.t.Remove()
	}
}

// uplinkCPU is the CPU whose poller receives uplink RX queue i of n:
// queue i gets the frames of the CPUs c with c % n == i while the
// group spreads by CPU (see pkg/afpacket's steer), so the first such CPU
// the process may use, else the i-th CPU it may use.
func uplinkCPU(cpus []int, i, n int) int {
	for _, c := range cpus {
		if c%n == i {
			return c
		}
	}
	return cpus[i%len(cpus)]
}

// portCPU is the CPU whose poller takes a port's queue first, before its
// first frame tells where the VM runs: the ports spread over the CPUs by
// slot. s.pollers is set.
func (s *Switch) portCPU(slot int) int {
	if s.pollers == nil {
		return -1
	}
	cpus := s.pollers.CPUs()
	return cpus[slot%len(cpus)]
}

// uplinkCPU is uplinkCPU for uplink RX queue i of the switch's.
func (s *Switch) uplinkCPU(i int) int {
	if s.pollers == nil {
		return -1
	}
	return uplinkCPU(s.pollers.CPUs(), i, s.cfg.UplinkQueues)
}

// PollStats are the CPU pollers' counters (Config.CPUPoll); ok is false
// without pollers.
type PollStats struct {
	cpupoll.Stats
	Handoffs uint64 // queues handed to their worker's goroutine
}

// PollStats returns the CPU pollers' counters; false when the switch has
// none (Config.CPUPoll off, or not started).
func (s *Switch) PollStats() (PollStats, bool) {
	s.mu.Lock()
	ps := s.pollers
	s.mu.Unlock()
	if ps == nil {
		return PollStats{}, false
	}
	return PollStats{Stats: ps.Stats(), Handoffs: s.handoffs.Load()}, true
}
