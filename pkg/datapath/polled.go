package datapath

import (
	"sync/atomic"

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
// time: own says which. Only the poller's run hands the queue over (own
// set, target disabled, a message on handoff), only the goroutine gives it
// back (own cleared, target enabled); a run of the poller that comes
// after the hand-over (an event it had already taken) finds own set and
// does nothing.
type polling struct {
	s      *Switch
	q      backend.Polled
	t      *cpupoll.Target
	b      *backend.Batch
	work   func() // the worker's pipeline for the frames in b; releases b
	follow bool   // ports: move to the CPU that receives the frames
	home   int    // the CPU whose poller takes the queue back

	own     atomic.Bool
	handoff chan error // nil: a stream began; else TryRecv's error
}

// newPolling returns q's polling, or nil when the switch has no pollers
// or q cannot be polled (the worker then receives with Recv as ever).
// home is the poller to start on; follow moves the queue to the CPU that
// received its last frame.
func (s *Switch) newPolling(q backend.Queue, b *backend.Batch, work func(), home int, follow bool) *polling {
	pq, ok := q.(backend.Polled)
	if s.pollers == nil || !ok {
		return nil
	}
	pl := &polling{s: s, q: pq, b: b, work: work, follow: follow, home: home, handoff: make(chan error, 1)}
	t, err := s.pollers.Add(pq.PollFD(), pl.run)
	if err != nil {
		s.log.Warn("queue left to its worker: no CPU poller for it", "err", err)
		return nil
	}
	pl.t = t
	pl.own.Store(true) // the worker's until start
	return pl
}

// start hands the queue to its poller; the worker calls it once, before
// its loop.
func (pl *polling) start() error {
	if pl == nil {
		return nil
	}
	return pl.giveBack()
}

// owned reports whether the worker's goroutine receives the queue now.
func (pl *polling) owned() bool { return pl == nil || pl.own.Load() }

// run is the poller's work (cpupoll's fn): one batch through the
// worker's pipeline.
func (pl *polling) run(cpu int) bool {
	if pl.own.Load() {
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
			_ = pl.t.Move(c) // fails only for a closed socket: its worker is stopping
		}
	}
	return n == pl.b.Cap()
}

// handOff gives the queue to the worker's goroutine.
func (pl *polling) handOff(err error) {
	pl.own.Store(true)
	pl.t.Disable()
	pl.s.handoffs.Add(1)
	select {
	case pl.handoff <- err:
	default: // cannot happen: one hand-over at a time
	}
}

// wait blocks the worker's goroutine until the poller hands it the queue
// (true, with TryRecv's error if that was why) or stop is closed (false).
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
// there already.
func (pl *polling) giveBack() error {
	if pl.follow {
		if c := pl.q.IncomingCPU(); c >= 0 {
			pl.home = c
		}
	}
	pl.own.Store(false)
	if err := pl.t.Enable(pl.home); err != nil {
		pl.own.Store(true)
		return err
	}
	return nil
}

// remove takes the queue from the pollers for good, once the worker
// stops; a run in progress finishes first.
func (pl *polling) remove() {
	if pl != nil {
		pl.t.Remove()
	}
}

// uplinkCPU is the CPU whose poller receives uplink RX queue i of n:
// with PACKET_FANOUT_CPU queue i gets the frames of the CPUs c with
// c % n == i, so the first such CPU the process may use, else the i-th
// CPU it may use.
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
