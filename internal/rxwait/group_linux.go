//go:build linux

package rxwait

import (
	"fmt"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// NewGroup returns a Group whose waiters spin for up to budget before
// they sleep (0: they never spin; a nil *Group is the same).
func NewGroup(budget time.Duration) (*Group, error) {
	if err := CheckBudget(budget); err != nil {
		return nil, err
	}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll instance for busy polling: %w", err)
	}
	return &Group{ep: ep, budget: budget, credit: SpinCredit * budget, base: time.Now()}, nil
}

// Close frees the Group's epoll instance, once no member's queue can
// receive any more (its descriptor number may be reused at once).
func (g *Group) Close() error {
	if g == nil || g.ep < 0 {
		return nil
	}
	err := unix.Close(g.ep)
	g.ep = -1
	return err
}

// join adds a waiter's epoll instance (readable whenever its socket has
// frames) to the Group, edge-triggered: the Group reports a socket's new
// frames once, not a frame its queue has not taken yet. Closing the
// waiter's instance takes it out again.
func (g *Group) join(ep int) error {
	if g == nil || g.budget == 0 {
		return nil
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(ep)}
	if err := unix.EpollCtl(g.ep, unix.EPOLL_CTL_ADD, ep, &ev); err != nil {
		return fmt.Errorf("join busy-poll group: %w", err)
	}
	return nil
}

// spin busy-polls for up to the budget, until the spinner's own ring has
// frames (peek) or another member's socket gets some, and reports whether
// either happened. self is the spinner's epoll instance: the Group's
// edges for it are passed over (they may be from the frames it has just
// taken; peek is what tells). Work that is there before the spin begins
// (a frame the spinner's transmit reflected onto the uplink's ring) ends
// it before it starts, counted as ready, not as a spin. Only one goroutine
// spins at a time: the others return false at once; so does a spin that
// found no work ready while the credit is spent (skipped) or while it
// backs off (BackoffSpins). recv is when the spinner's queue received the
// frames it has just handled: the first such frames after a miss tell
// whether the miss came just too early.
func (g *Group) spin(self int, peek func() bool, recv time.Time) bool {
	if g == nil || g.budget == 0 || peek == nil || !g.spinning.CompareAndSwap(false, true) {
		return false
	}
	defer g.spinning.Store(false)
	start := time.Since(g.base)
	if at := recv.Sub(g.base); g.missed != 0 && at >= g.missed {
		if at-g.missed < g.budget {
			g.backoff = BackoffSpins // the last spin missed what came right after it
		}
		g.missed = 0
	}
	if peek() || g.other(self) {
		g.ready.Add(1)
		return true
	}
	g.credit = min(g.credit+(start-g.topped)/SpinShare, SpinCredit*g.budget)
	g.topped = start
	if g.credit < g.budget {
		g.skipped.Add(1)
		return false
	}
	if g.backoff > 0 {
		g.backoff--
		g.backedOff.Add(1)
		return false
	}
	hit, now := false, start
	for !hit && now-start < g.budget {
		hit = peek() || g.other(self)
		now = time.Since(g.base)
	}
	spent := now - start
	g.credit -= spent
	g.spun.Add(int64(spent))
	if hit {
		g.hits.Add(1)
	} else {
		g.misses.Add(1)
		g.missed = now
	}
	return hit
}

// other reports whether a member other than self has had new frames since
// the last look (it consumes the edges it sees).
func (g *Group) other(self int) bool {
	var evs [16]unix.EpollEvent
	// A raw system call: it never blocks, and one made through the runtime
	// wakes the runtime's sleeping monitor thread (a futex wake of another
	// CPU) when no goroutine was running. EINTR cannot come with a zero
	// timeout; any error (a closed Group) reads as nothing.
	r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(g.ep), uintptr(unsafe.Pointer(&evs[0])), uintptr(len(evs)), 0, 0, 0)
	if e != 0 {
		return false
	}
	for _, ev := range evs[:int(r)] {
		if int(ev.Fd) != self {
			return true
		}
	}
	return false
}
