//go:build linux

package afxdp

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

// errWaitClosed is what wait returns once close was called.
var errWaitClosed = errors.New("afxdp: receive wait closed")

// How a receiving queue waits (see rxWaiter).
const (
	// spreadBatch: a Recv that returns at least this many frames (a
	// backlog built up while the goroutine was busy or asleep) makes the
	// queue wait on its own thread.
	spreadBatch = 16
	// spreadIdle: a wait on the queue's own thread that sees no frame for
	// this long returns the queue to the netpoller.
	spreadIdle = 2 * time.Millisecond
)

// rxWaiter puts a receiving goroutine to sleep until its socket has frames.
// It has two ways to wait and picks one by the load.
//
// Light load: in the Go runtime's netpoller. The goroutine parks (holding
// no thread and no P, the runtime's right to run Go code); the one thread
// that sleeps in epoll_wait for the whole process is woken by the socket,
// takes a free P and runs the goroutine itself. A frame's trip through the
// switch then runs to completion on that one thread: the egress worker's
// transmit on the uplink runs the kernel's bridge and the uplink's XDP
// program inside its sendto, so the reflected frame is already in the
// uplink's RX ring when the egress worker parks, and the same thread, on
// its way back to sleep, finds the ingress worker ready and runs it. No
// thread wakes another, as in the kernel, where a frame crosses a software
// switch in the softirq of the CPU that sent it.
//
// Why not poll(2) at light load: a goroutine blocked in a system call keeps
// its thread and, for a while, its P. After 10 ms the runtime's monitor
// thread (sysmon) takes that P away, and sleeps itself once every P is
// idle. The first frame after a quiet spell paid for the runtime catching
// up: the returning thread had to find a free P and wake sysmon (a futex
// wake, 10-20 us on a small VM), and sysmon, seeing a P whose goroutine had
// not been rescheduled for 10 ms, preempted it. For the goroutines locked
// to their threads that the datapath used to have, that preemption was a
// round trip through another thread of normal priority. Traced on a busy
// 2-core VM: 20-90 us per hop, and milliseconds when that normal-priority
// thread had to wait for a CPU. A goroutine woken by the netpoller is
// freshly scheduled, and sysmon stays asleep.
//
// Under load: on the goroutine's own thread, in a blocking poll(2) with a
// timeout of spreadIdle. Run to completion puts a whole stream on one
// thread, and the netpoller hands every ready goroutine to whichever
// thread polls: the workers would share one CPU while another idles
// (measured: a third less vm-to-vm throughput). A blocked poll wakes the
// queue's own thread, which the kernel places on a free CPU, so the
// workers run in parallel. A Recv that returns spreadBatch frames or more
// switches to it; a poll that sees no frame for spreadIdle switches back.
// The poll asks for POLLIN only, so transmissions on the socket do not wake
// it.
//
// A thread blocked in poll keeps its P until sysmon takes it, and nothing
// polls the network while no P is free: a goroutine parked in the
// netpoller (another port's worker, the one carrying a ping through a busy
// switch) then waits until sysmon polls, every 10 ms. Measured with a
// stream at 50 kframes/s and pings beside it: p99 12 ms. So at most
// GOMAXPROCS-1 queues of a Backend wait in poll (Backend.spreading counts
// them) and one P is always free for the netpoller (p99 0.8 ms). (vswitchd
// gives the runtime a P per worker, which keeps that limit out of reach;
// it matters to a process that does not.)
//
// The netpoller registers every file for EPOLLIN and EPOLLOUT. An XSK
// signals EPOLLOUT (write space) each time the kernel consumes its TX ring,
// that is on every Send on the socket, which would wake the poller's
// thread for nothing. So the netpoller watches an epoll instance of our
// own, which watches the socket for EPOLLIN only (an epoll fd is readable
// when one of its files is, and never writable), and not even that while
// the queue waits on its own thread. We never epoll_wait on it ourselves:
// ready, the caller's check of the RX ring, is what decides, and it is
// re-checked after every wake-up and before sleeping, so a frame that
// arrived in between is never slept on.
type rxWaiter struct {
	ep int      // our epoll instance, watching the socket
	f  *os.File // owns ep, registered with the netpoller
	rc syscall.RawConn

	efd int            // eventfd: close wakes a blocking poll
	pfd [2]unix.PollFd // socket (POLLIN), eventfd
	ts  unix.Timespec  // spreadIdle

	// spread: wait on our own thread. Only the goroutine in wait (and in
	// received, called by the same Recv) touches it.
	spread    bool
	spreading *atomic.Int32 // queues of the Backend that wait on their own thread
	closed    atomic.Bool
}

// newRXWaiter prepares both ways of waiting for socket fd's RX ring.
// spreading counts the waiters that wait on their own thread (one counter
// per Backend); name is for error messages only.
func newRXWaiter(fd int, spreading *atomic.Int32, name string) (*rxWaiter, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll instance for the netpoller: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
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
	w := &rxWaiter{ep: ep, f: f, rc: rc, efd: efd, spreading: spreading, ts: unix.NsecToTimespec(int64(spreadIdle))}
	w.pfd[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	w.pfd[1] = unix.PollFd{Fd: int32(efd), Events: unix.POLLIN}
	return w, nil
}

// received tells the waiter how many frames the last Recv returned.
func (w *rxWaiter) received(n int) {
	if n < spreadBatch || w.spread {
		return
	}
	// Each waiter on its own thread holds a P while it sleeps in poll, and
	// at least one P must stay free for the netpoller.
	if w.spreading.Add(1) > int32(runtime.GOMAXPROCS(0)-1) {
		w.spreading.Add(-1) // every P but one is taken: stay in the netpoller
		return
	}
	w.spread = true
	w.watch(false)
}

// unspread returns the queue to the netpoller.
func (w *rxWaiter) unspread() {
	if w.spread {
		w.spread = false
		w.spreading.Add(-1)
		w.watch(true)
	}
}

// watch turns the netpoller's view of the socket on or off.
func (w *rxWaiter) watch(on bool) {
	ev := unix.EpollEvent{Fd: w.pfd[0].Fd}
	if on {
		ev.Events = unix.EPOLLIN
	}
	// Only fails if the socket or ep is closed, when nobody waits any more.
	_ = unix.EpollCtl(w.ep, unix.EPOLL_CTL_MOD, int(w.pfd[0].Fd), &ev)
}

// wait returns once ready reports true; the goroutine sleeps in between.
// ready is called first at once and again after every wake-up. Pass a func
// value made once (a method value bound at open), so that waiting allocates
// nothing. After close, wait returns errWaitClosed.
func (w *rxWaiter) wait(ready func(uintptr) bool) error {
	if w.spread {
		ok, err := w.pollWait(ready)
		if ok || err != nil {
			return err
		}
		w.unspread() // nothing for spreadIdle: back to the netpoller
	}
	err := w.rc.Read(ready)
	if err != nil && w.closed.Load() {
		return errWaitClosed // the file's own "use of closed file"
	}
	return err
}

// pollWait waits in blocking polls on the calling thread until ready
// (true), or until a poll saw nothing for spreadIdle (false).
func (w *rxWaiter) pollWait(ready func(uintptr) bool) (bool, error) {
	for {
		if ready(0) {
			return true, nil
		}
		if w.closed.Load() {
			return false, errWaitClosed
		}
		w.pfd[0].Revents, w.pfd[1].Revents = 0, 0
		ts := w.ts // ppoll writes back the time left
		n, _, e := unix.Syscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&w.pfd[0])), uintptr(len(w.pfd)),
			uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
		switch {
		case e == unix.EINTR:
		case e != 0:
			return false, fmt.Errorf("poll: %w", e)
		case w.pfd[1].Revents != 0:
			return false, errWaitClosed
		case n == 0:
			return ready(0), nil
		}
	}
}

// close wakes a goroutine waiting either way (wait returns errWaitClosed)
// and returns once it has left the netpoller.
func (w *rxWaiter) close() error {
	w.closed.Store(true)
	var one = [8]byte{1}
	_, _ = unix.Write(w.efd, one[:])
	return w.f.Close()
}

// release frees the eventfd once nobody can wait any more: the queue's Recv
// has returned and cannot start again.
func (w *rxWaiter) release() {
	if w.spread {
		w.spread = false
		w.spreading.Add(-1)
	}
	if w.efd >= 0 {
		_ = unix.Close(w.efd)
		w.efd = -1
	}
}
