//go:build linux

package rxwait

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrClosed is what Wait, Park and PollWait return once Close was called.
var ErrClosed = errors.New("receive wait closed")

// ErrIdle is what Wait returns for a polled waiter (SetPolled) instead of
// sleeping in the netpoller.
var ErrIdle = errors.New("receive wait idle: back to the caller's poll loop")

// ErrTimeout is what Park returns when its timeout passed with nothing
// ready.
var ErrTimeout = errors.New("receive wait timed out")

// How a receiving queue waits (see the package documentation).
const (
	// SpreadBatch: a Recv that returns at least this many frames (a
	// backlog built up while the goroutine was busy or asleep) makes the
	// queue wait on its own thread.
	SpreadBatch = 16
	// BusyGap and BusyStreak: so do BusyStreak Recvs in a row that each
	// return frames less than BusyGap after the one before (a stream: at
	// light load frames come one by one, far apart; a request and its
	// answer, which cross an uplink worker one after the other, make a
	// streak of one); see Busy.
	BusyGap    = 200 * time.Microsecond
	BusyStreak = 4
	// SpreadIdle: a wait on the queue's own thread that sees no frame for
	// this long returns the queue to the netpoller.
	SpreadIdle = 2 * time.Millisecond
	// YieldEvery: a goroutine that waits on its own thread (or never
	// waits) goes through the scheduler at least this often, so the
	// runtime's monitor never finds it running for its 10 ms. Not much
	// more often: runtime.Gosched wakes an idle thread to look for work
	// (wakep), which spins a few microseconds at the datapath's
	// priority, taking them from the VMs; every 2 ms that was 1,000 futex
	// wake-ups a second more at vm-to-vm saturation and a few percent of
	// the generator's rate.
	YieldEvery = 8 * time.Millisecond
)

// Waiter puts one queue's receiving goroutine to sleep until its socket
// has frames, in the netpoller or on its own thread (see the package
// documentation). Only the goroutine that receives calls Received, Spread,
// Unspread, Wait, Park, PollWait and Yield; Close may come from any
// goroutine.
type Waiter struct {
	sock int      // the socket, watched for POLLIN
	ep   int      // our epoll instance, watching the socket
	f    *os.File // owns ep, registered with the netpoller
	rc   syscall.RawConn

	efd int            // eventfd: Close wakes a blocking poll
	pfd [2]unix.PollFd // socket (POLLIN), eventfd
	ts  unix.Timespec  // SpreadIdle

	// spread: wait on our own thread. Only the receiving goroutine
	// touches it.
	spread    bool
	spreading *atomic.Int32 // waiters sharing the counter that wait on their own thread
	closed    atomic.Bool

	base time.Time // the clock's zero (monotonic)
	// deadline is the netpoller file's read deadline (Park's timeout),
	// since base; zero when none is set.
	deadline time.Duration
	// yielded is when the goroutine last went through the scheduler (Yield,
	// or a Park that waited), since base.
	yielded time.Duration
	// lastBatch is when Received was last called, since base; streak
	// counts the calls in a row that came less than BusyGap after the one
	// before.
	lastBatch time.Duration
	streak    int

	// group busy-polls before Park sleeps (nil: never); fresh is set by
	// Received (frames came since the last Park) and cleared by Park and
	// Unspread (frames SpreadIdle old have no answer coming), so only a
	// Park right after work spins, never the jam watchdog's periodic ones.
	group *Group
	fresh bool
	peek  func() bool // SetPeek

	onUnspread func() // SetOnUnspread

	// polled: someone else's poll loop receives while the queue is idle
	// (SetPolled); the netpoller never watches the socket.
	polled bool

	// Park's check of the caller's ready: checkFn (w.check, made once)
	// counts the calls, so Park knows whether the goroutine waited.
	ready   func(uintptr) bool
	checks  int
	checkFn func(uintptr) bool
}

// New prepares both ways of waiting for the RX ring of socket sock.
// spreading counts the waiters that wait on their own thread (one counter
// shared by a backend's queues); group, if not nil, is the busy poll the
// waiter joins (one for the whole process); name is for error messages
// only.
func New(sock int, spreading *atomic.Int32, group *Group, name string) (*Waiter, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll instance for the netpoller: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(sock)}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, sock, &ev); err != nil {
		unix.Close(ep)
		return nil, fmt.Errorf("watch socket for RX: %w", err)
	}
	if err := unix.SetNonblock(ep, true); err != nil {
		unix.Close(ep)
		return nil, fmt.Errorf("set epoll fd non-blocking: %w", err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(ep)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	f := os.NewFile(uintptr(ep), name) // non-blocking: joins the netpoller
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		unix.Close(efd)
		return nil, fmt.Errorf("register with the netpoller: %w", err)
	}
	w := &Waiter{sock: sock, ep: ep, f: f, rc: rc, efd: efd, spreading: spreading,
		ts: unix.NsecToTimespec(int64(SpreadIdle)), base: time.Now(), lastBatch: -time.Hour}
	w.pfd[0] = unix.PollFd{Fd: int32(sock), Events: unix.POLLIN}
	w.pfd[1] = unix.PollFd{Fd: int32(efd), Events: unix.POLLIN}
	w.checkFn = w.check
	if err := group.join(ep); err != nil {
		unix.Close(efd)
		f.Close()
		return nil, err
	}
	w.group = group
	return w, nil
}

// SetPeek gives the busy poll (see Group) a look at the caller's ring: peek
// reports whether frames are there, with no other effect (Park's ready may
// have some). Without one the waiter never spins. Call it before the first
// Wait or Park, from the receiving goroutine or before it starts.
func (w *Waiter) SetPeek(peek func() bool) { w.peek = peek }

// SetOnUnspread has Unspread call f once the queue is back from its own
// thread, before Wait goes on to park or return: a caller that tells
// others when its queue streams (pkg/afxdp's steering) hears it at once,
// not at the next frame. Call it before the first Wait.
func (w *Waiter) SetOnUnspread(f func()) { w.onUnspread = f }

// SetPolled hands the queue's idle waits to a poll loop of the caller's
// (pkg/datapath's CPU pollers, internal/cpupoll): the netpoller stops
// watching the socket for good, and Received still moves a queue that
// streams to its own thread (Spread) but wakes no netpoller thread for
// it. The caller must not Park or Wait while not Spread: Polled says so.
// Call it before the first Received.
func (w *Waiter) SetPolled() {
	w.polled = true
	w.watch(false)
}

// Polled reports whether SetPolled was called.
func (w *Waiter) Polled() bool { return w.polled }

// WakeFD is the eventfd Close writes: a caller that waits in a poll of its
// own (on its own thread) polls it too.
func (w *Waiter) WakeFD() int { return w.efd }

// Closed reports whether Close was called.
func (w *Waiter) Closed() bool { return w.closed.Load() }

// Received tells the waiter that a Recv returned n frames: a backlog or a
// stream (Busy) moves the queue to its own thread. It is also a
// scheduling point for a goroutine that never waits (see Yield).
func (w *Waiter) Received(n int) {
	now := time.Since(w.base)
	if now-w.lastBatch < BusyGap {
		w.streak++
	} else {
		w.streak = 0
	}
	w.lastBatch = now
	w.fresh = true
	if !w.polled || w.spread {
		// A polled queue's frames are received by its poller, which
		// goes through the scheduler on its own schedule, between
		// frames: runtime.Gosched wakes an idle thread (wakep), an
		// inter-processor interrupt on the frame's path.
		w.yield(now)
	}
	if w.spread || n < SpreadBatch && w.streak < BusyStreak {
		return
	}
	// Each waiter on its own thread holds a P while it sleeps in poll, and
	// at least one P must stay free for the netpoller.
	if w.spreading.Add(1) > int32(runtime.GOMAXPROCS(0)-1) {
		w.spreading.Add(-1) // every P but one is taken: stay in the netpoller
		return
	}
	w.spread = true
	if !w.polled {
		w.watch(false)
		wakeNetpoller()
	}
}

// wakeNetpoller makes the runtime start a thread that looks for work and,
// finding none, goes to sleep in epoll_wait as the netpoller's thread. A
// queue that moves to its own thread keeps the thread it runs on, and
// that was often the netpoller's (the one a frame woke after a quiet
// spell): the runtime starts no other poller until some thread runs out
// of work, and meanwhile the queues still in the netpoller wait for a
// thread that happens by. Measured with the benchmark's load phase (a
// stream VM1 -> VM2 at half of saturation, probes beside it; the probes'
// uplink queue and VM2's port wait in the netpoller, the stream's queues
// on their threads), batches received 1 ms or more after the kernel had
// the first frame, over 4.5 s: probe queues 12-36 and 2-17 without this,
// 1 and 0 with it, as on main (1, 0). A new goroutine is the runtime's own
// way to ask for such a thread (wakep, when a P is idle and no thread is
// already looking); the goroutine itself does nothing.
func wakeNetpoller() { go func() {}() }

// Busy reports whether the last batch came less than BusyGap after the one
// before. A caller that waits on its own thread may then let frames gather
// before it sleeps on the per-frame wake-up (pkg/afpacket naps, as NAPI
// defers its interrupt); an isolated frame is never held up so.
func (w *Waiter) Busy() bool { return w.streak > 0 }

// Spread reports whether the queue waits on its own thread now.
func (w *Waiter) Spread() bool { return w.spread }

// Unspread returns the queue to the netpoller.
func (w *Waiter) Unspread() {
	if w.spread {
		w.spread = false
		w.spreading.Add(-1)
		w.fresh = false // its frames are SpreadIdle old: no answer to wait for
		w.watch(true)
		if w.onUnspread != nil {
			w.onUnspread()
		}
	}
}

// watch turns the netpoller's view of the socket on or off. Off takes the
// socket out of our epoll instance altogether (EPOLL_CTL_DEL): an entry
// without events stays on the socket's wait queue, and the kernel would
// still run its callback (taking the epoll instance's lock) for every frame
// the queue receives while it polls on its own thread, that is for every
// frame of a stream.
func (w *Waiter) watch(on bool) {
	if on && w.polled {
		return
	}
	// Only fails if the socket or ep is closed, when nobody waits any more.
	if on {
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(w.sock)}
		_ = unix.EpollCtl(w.ep, unix.EPOLL_CTL_ADD, w.sock, &ev)
		return
	}
	_ = unix.EpollCtl(w.ep, unix.EPOLL_CTL_DEL, w.sock, nil)
}

// Yield goes through the scheduler (runtime.Gosched) when the goroutine
// has not done so for YieldEvery. A goroutine that sleeps in poll(2) on
// its own thread, or finds frames every time, never parks; the runtime's
// monitor would preempt it every 10 ms and take its P, and each P it takes
// sets the monitor polling every 20 us (see the package documentation).
func (w *Waiter) Yield() { w.yield(time.Since(w.base)) }

// yield is Yield at time now (since base).
func (w *Waiter) yield(now time.Duration) {
	if now-w.yielded < YieldEvery {
		return
	}
	w.yielded = now
	runtime.Gosched()
}

// Wait returns once ready reports true; the goroutine sleeps in between,
// on its own thread while Spread, else in the netpoller. ready is called
// first at once and again after every wake-up. Pass a func value made once
// (a method value bound at open), so that waiting allocates nothing. After
// Close, Wait returns ErrClosed.
func (w *Waiter) Wait(ready func(uintptr) bool) error {
	if w.spread {
		ok, err := w.PollWait(ready)
		if ok || err != nil {
			return err
		}
		w.Unspread() // nothing for SpreadIdle: back to the netpoller
	}
	if w.polled {
		return ErrIdle
	}
	return w.Park(ready, 0)
}

// Park waits in the netpoller until ready reports true (called at once and
// after every wake-up), Close (ErrClosed) or, with a timeout > 0, until
// the timeout passed (ErrTimeout; the timeout is kept as a read deadline
// and re-armed only when less than half of it is left, so the wait ends
// between timeout/2 and timeout after it began).
func (w *Waiter) Park(ready func(uintptr) bool, timeout time.Duration) error {
	if timeout > 0 {
		now := time.Since(w.base)
		if w.deadline-now < timeout/2 {
			w.deadline = now + timeout
			if err := w.f.SetReadDeadline(w.base.Add(w.deadline)); err != nil {
				if w.closed.Load() {
					return ErrClosed
				}
				return fmt.Errorf("netpoller deadline: %w", err)
			}
		}
	} else if w.deadline != 0 {
		w.deadline = 0
		_ = w.f.SetReadDeadline(time.Time{})
	}
	if w.fresh {
		// Spin first (the Group's busy poll): an answer to the frames
		// just sent, coming back within it on any queue, then crosses
		// the switch on this thread without a wake-up.
		w.fresh = false
		w.group.spin(w.ep, w.peek, w.base.Add(w.lastBatch))
	}
	w.ready, w.checks = ready, 0
	err := w.rc.Read(w.checkFn)
	w.ready = nil
	if w.checks > 1 {
		// Waited: parked, and scheduled again when woken (or found the
		// netpoller's note of an earlier wake-up and went on at once, the
		// rarer case, which the next Yield makes up for).
		w.yielded = time.Since(w.base)
	}
	switch {
	case err == nil:
		return nil
	case w.closed.Load():
		return ErrClosed // the file's own "use of closed file"
	case errors.Is(err, os.ErrDeadlineExceeded):
		w.deadline = 0 // passed: the next Park sets a new one
		return ErrTimeout
	}
	return err
}

// check is Park's ready: the caller's, counted.
func (w *Waiter) check(fd uintptr) bool {
	w.checks++
	return w.ready(fd)
}

// PollWait waits in blocking polls on the calling thread until ready
// (true), or until a poll saw nothing for SpreadIdle (false).
func (w *Waiter) PollWait(ready func(uintptr) bool) (bool, error) {
	for {
		if ready(0) {
			return true, nil
		}
		if w.closed.Load() {
			return false, ErrClosed
		}
		w.Yield()
		w.pfd[0].Revents, w.pfd[1].Revents = 0, 0
		ts := w.ts // ppoll writes back the time left
		n, _, e := unix.Syscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&w.pfd[0])), uintptr(len(w.pfd)),
			uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
		switch {
		case e == unix.EINTR:
		case e != 0:
			return false, fmt.Errorf("poll: %w", e)
		case w.pfd[1].Revents != 0:
			return false, ErrClosed
		case n == 0:
			return ready(0), nil
		}
	}
}

// Close wakes a goroutine waiting either way (Wait, Park and PollWait
// return ErrClosed, a caller's own poll sees WakeFD readable) and returns
// once it has left the netpoller.
func (w *Waiter) Close() error {
	w.closed.Store(true)
	var one = [8]byte{1}
	_, _ = unix.Write(w.efd, one[:])
	return w.f.Close()
}

// Release frees the eventfd once nobody can wait any more: the queue's Recv
// has returned and cannot start again.
func (w *Waiter) Release() {
	if w.spread {
		w.spread = false
		w.spreading.Add(-1)
	}
	if w.efd >= 0 {
		_ = unix.Close(w.efd)
		w.efd = -1
	}
}
