package rxwait

import (
	"fmt"
	"sync/atomic"
	"time"
)

// Busy polling: how long a spin lasts, and how much of a CPU a Group may
// spin away.
const (
	// DefaultBusyPoll is vswitchd's --busy-poll: long enough for a VM's
	// answer to a frame (a wake-up of the VM, its stack, its send) to come
	// back within it. Measured in the benchmark's light-load phase (2-vCPU
	// VM, AF_XDP uplink, 400 round trips each, hits per round trip): 50 us,
	// NAPI's usual busy_poll, caught the answer in 94.5 % of the round
	// trips, 100 us in 99.5 %, 200 us in 99.75 %. Each round trip also
	// spends one whole budget after the answer was delivered (a miss):
	// 0.75, 1.3 and 2.4 % of a CPU at 100 round trips a second.
	DefaultBusyPoll = 100 * time.Microsecond
	// MaxBusyPoll bounds a spin: longer, a queue would rather poll.
	MaxBusyPoll = time.Millisecond

	// SpinShare: a Group spins at most 1/SpinShare of one CPU's time,
	// averaged over SpinCredit budgets (a burst of misses spends the
	// credit, then spins are skipped until it has grown back).
	SpinShare = 10
	// SpinCredit is how many full budgets of spinning a Group may spend
	// at once (its credit starts full).
	SpinCredit = 8
	// BackoffSpins: when the first frames a spinner's queue received after
	// a spin that missed came within the budget after it, the next
	// BackoffSpins spins are not made. That
	// spin did not pay (the work came just too late), and it may have
	// held the work up: a VM thread the kernel woke on the spinning CPU
	// cannot run before a real-time spin ends (measured with vswitchd and
	// the answering VM pinned to one CPU: light-load p50 151-158 us
	// without busy polling, 215-316 us with 100 us spins).
	BackoffSpins = 16
)

// Group is the busy poll of the waiters of one process: every queue of
// every backend that waits in the netpoller, so that the queue an answer
// comes back on is seen whoever spins. See the package documentation.
type Group struct {
	ep     int           // epoll instance watching every member's epoll instance, edge-triggered
	budget time.Duration // longest spin

	spinning atomic.Bool // one goroutine spins at a time
	// Only the goroutine that set spinning touches these.
	credit  time.Duration // spin time it may still use
	topped  time.Duration // when credit was last topped up, since base
	missed  time.Duration // when the last spin ended with a miss, since base (0: it did not)
	backoff int           // spins still not to make (BackoffSpins)
	base    time.Time

	hits, misses, ready, skipped, backedOff atomic.Uint64
	spun                                    atomic.Int64 // nanoseconds
}

// GroupStats counts a Group's spins.
type GroupStats struct {
	// Hits: spins that ended because a queue got frames meanwhile (a
	// thread's wake-up spared); Misses: spins that ran out.
	Hits, Misses uint64
	// Ready: no spin, a queue had frames already (the spinner's own, or a
	// reflected frame its transmit put on the uplink's ring).
	Ready uint64
	// Skipped: spins not started because the Group's credit was spent.
	Skipped uint64
	// BackedOff: spins not started because spinning did not pay lately
	// (BackoffSpins).
	BackedOff uint64
	// Spun is the wall time spent spinning.
	Spun time.Duration
}

// Spins is the number of spins made: Hits + Misses.
func (s GroupStats) Spins() uint64 { return s.Hits + s.Misses }

// CheckBudget reports whether budget is a spin's length NewGroup takes:
// 0 (none), or 1us up to MaxBusyPoll.
func CheckBudget(budget time.Duration) error {
	if budget != 0 && (budget < time.Microsecond || budget > MaxBusyPoll) {
		return fmt.Errorf("busy-poll time %v: use 0 (off) or 1us-%v", budget, MaxBusyPoll)
	}
	return nil
}

// Budget is the longest spin (0: none).
func (g *Group) Budget() time.Duration {
	if g == nil {
		return 0
	}
	return g.budget
}

// Stats returns the Group's counters (zero for a nil Group).
func (g *Group) Stats() GroupStats {
	if g == nil {
		return GroupStats{}
	}
	return GroupStats{Hits: g.hits.Load(), Misses: g.misses.Load(), Ready: g.ready.Load(), Skipped: g.skipped.Load(), BackedOff: g.backedOff.Load(), Spun: time.Duration(g.spun.Load())}
}
