// Package rxwait is how a datapath queue's receiving goroutine sleeps until
// its socket has frames: NAPI's rule (poll while there is work, sleep on a
// per-frame wake-up when idle) in terms of the Go scheduler. pkg/afpacket
// and pkg/afxdp both wait through a Waiter; what a "frame" is (a
// TPACKET_V2 slot, an XSK RX descriptor) stays theirs, given to the Waiter
// as a ready function that looks at the ring.
//
// # Two ways to wait
//
// Light load: in the Go runtime's netpoller (Park, Wait). The goroutine
// parks holding no thread and no P (the runtime's right to run Go code);
// the one thread that sleeps in epoll_wait for the whole process is woken
// by the socket, takes a free P and runs the goroutine itself. A frame's
// trip through the switch then runs to completion on that one thread: the
// egress worker's transmit on the uplink runs the kernel's bridge (and the
// uplink's receive) inside its sendmmsg or sendto, so the reflected frame
// is already in the uplink's RX ring when the egress worker parks, and the
// same thread, on its way back to sleep, finds the ingress worker ready
// and runs it. No thread wakes another, as in the kernel, where a frame
// crosses a software switch in the softirq of the CPU that sent it.
//
// Under load: on the goroutine's own thread, in a blocking poll(2) with a
// timeout of SpreadIdle (PollWait, or the caller's own poll while Spread
// reports true). Run to completion puts a whole stream on one thread, and
// the netpoller hands every ready goroutine to whichever thread polls: the
// workers would share one CPU while another idles (measured with AF_XDP: a
// third less vm-to-vm throughput). A blocked poll wakes the queue's own
// thread, which the kernel places on a free CPU, so the workers run in
// parallel. Received switches a queue to it after a Recv returned
// SpreadBatch frames or more (a backlog built up while the goroutine was
// busy or asleep) or after BusyStreak Recvs in a row that each came less
// than BusyGap after the previous one (a stream); a poll that sees no
// frame for SpreadIdle switches back
// (Unspread). So at light load, frames far apart, every queue waits in the
// netpoller; a stream puts the queues it crosses on threads of their own.
//
// # Why not poll(2) all the time: the runtime's monitor
//
// A goroutine blocked in a system call keeps its thread and its P. The
// runtime's monitor thread (sysmon) takes that P away after 10 ms, and it
// preempts any goroutine that has not been through the scheduler for
// 10 ms: a worker that sleeps in ppoll and never parks is one. Every P it
// takes resets sysmon's own sleep to 20 us for the next millisecond or
// more, and sysmon never sleeps for good while a goroutine sits in a
// system call. The worker that comes back from its poll finds its P gone,
// takes an idle one and wakes sysmon (a futex wake on the frame's path),
// and that P's preemption clock is stale, so sysmon preempts and takes it
// again at its next look. Measured on the 2-CPU benchmark machine with
// AF_PACKET workers in ppoll (uprobes on the runtime): 260 handoffp/s and
// 620 sysmon rounds/s with one probe every 10 ms, 4,700 handoffp/s,
// 5,300 preemptone/s and 3,200 rounds/s under load, sysmon runnable but
// not running for half of every second (it is a normal-priority thread
// below the real-time datapath, and competes with the VMs' vCPUs for the
// rest). A goroutine parked in the netpoller holds no P, is freshly
// scheduled when it wakes, and sysmon sleeps once every P is idle.
//
// A goroutine that waits on its own thread still never parks: Yield, called
// before each blocking poll, goes through the scheduler (runtime.Gosched)
// when the goroutine has not for YieldEvery, well within sysmon's 10 ms.
//
// A thread blocked in poll keeps its P, and nothing polls the network while
// no P is free: a goroutine parked in the netpoller (another port's worker,
// the one carrying a ping through a busy switch) then waits until sysmon
// polls, every 10 ms. Measured with a stream at 50 kframes/s and pings
// beside it: p99 12 ms. So at most GOMAXPROCS-1 queues that share a
// spreading counter wait in poll, and one P is always free for the
// netpoller (p99 0.8 ms). (vswitchd gives the runtime a P per worker,
// which keeps that limit out of reach; it matters to a process that does
// not.)
//
// The netpoller has one thread asleep in epoll_wait for the whole process.
// When a frame wakes it for a queue that then moves to its own thread, the
// queue keeps that thread, and the runtime starts no other poller until
// some thread runs out of work: the queues still in the netpoller (a
// probe's, beside a stream) waited milliseconds for a thread that happened
// by. So a queue that moves to its own thread makes the runtime start a
// thread that looks for work and, finding none, becomes the poller
// (wakeNetpoller).
//
// # What the netpoller watches
//
// The netpoller registers every file for EPOLLIN and EPOLLOUT, edge
// triggered. A packet socket or an XSK signals EPOLLOUT (write space) each
// time the kernel frees what it sent, that is after every transmit on the
// socket, which would wake the poller's thread for nothing. So the
// netpoller watches an epoll instance of our own, which watches the socket
// for EPOLLIN (and, always, EPOLLERR and EPOLLHUP) only, and not even that
// while the queue waits on its own thread. Nobody epoll_waits on that
// instance itself: ready, the caller's check of its RX ring, is what
// decides, and it is re-checked after every wake-up and before sleeping,
// so a frame that arrived in between is never slept on. Because the
// netpoller is edge triggered, a socket that stays readable without news
// (a TPACKET_V2 slot the caller still holds) does not make it spin.
//
// Park takes an optional timeout, a safety net for a caller that must look
// at its ring now and then even when nothing wakes it (pkg/afpacket's jam
// watchdog): it is a read deadline on the netpoller's file, re-armed only
// when less than half of it is left, so a park costs no timer update.
//
// # Busy polling: the answer that comes back
//
// At light load a round trip VM1 -> VM2 -> VM1 crosses the switch twice,
// and each crossing began with a wake-up: the frame wakes the netpoller's
// thread, which has gone to sleep since. On a hypervisor whose CPUs idle
// that wake-up is an inter-processor interrupt to a halted CPU: measured
// with ftrace on the 2-vCPU benchmark machine, 17-50 us between the
// kernel's sched_waking and the thread running, and 10-18 us of the
// waker's own time to send it; the kernel's macvlan pays for two such
// wake-ups per round trip (the VMs'), vswitchd for four.
//
// A Group is NAPI's busy_poll for the whole process: a queue's goroutine
// that received frames and finds no more polls, before it parks, every
// queue of the Group for up to its budget (vswitchd --busy-poll, default
// DefaultBusyPoll). When another queue gets frames meanwhile (VM2's
// answer to the frame just delivered), the spin ends, the goroutine
// parks, and the same thread, which never slept, finds that queue ready in
// the netpoller and runs it: the answer crosses without a wake-up. The
// Group sees the queues through an epoll instance of its own that watches
// each waiter's epoll instance, edge triggered, polled with a raw
// epoll_wait that never blocks (through the runtime, a system call wakes
// its monitor thread when no goroutine was running: a futex wake of another
// CPU on the frame's path), and the spinner's own ring through the
// caller's side-effect-free peek (SetPeek). Work already there when the
// spin would begin (the frame the spinner's own transmit reflected onto
// the uplink's ring, or an answer the VM's kernel sent inside that
// transmit) ends it before it starts: counted as ready, not as a hit. Only
// a Park after Received spins (not after the queue's frames went stale on
// its own thread): an idle queue's watchdog Parks never do, and an idle
// switch stays idle. One goroutine spins at a time, and a Group spins at
// most a tenth of a CPU (SpinShare) over time: every spin's length is
// charged to its credit (SpinCredit budgets at most), misses in a row
// spend it, then spins are skipped until it grows back,
// so sporadic traffic on many ports cannot turn busy polling into a core's
// worth of spinning (the credit is the process's: such traffic holds
// every queue's spinning to that tenth). Under load queues wait on their
// own threads and never spin.
//
// The spin runs at the datapath's priority (SCHED_RR by default). A VM
// thread the kernel wakes on the spinner's CPU waits for the spin to end,
// up to the budget: its answer then comes after the spin, a miss that also
// delayed it. Dropping to normal priority for the spin was tried: a
// real-time thread of the runtime waiting for the spinner (the priority
// inversion pkg/datapath's thread_linux.go describes) stalled a spin for
// 100 ms. The kernel mostly wakes the VM on an idle CPU, not the busy one;
// forced onto it (vswitchd and VM2's responder pinned to one CPU of the
// benchmark machine), light-load p50 went from 151-158 us to 215-316 us.
// Hence the back-off: a spin that missed frames received right after it
// (the first a spinner's queue received after the miss, within the
// budget) did not pay and may have held them up, and the next
// BackoffSpins spins are not made (pinned as above: 145-164 us against
// 137-140 us without busy polling; unpinned, answers caught in 91 % of
// the round trips instead of 99.5 %).
//
// # Closing
//
// Close wakes a goroutine waiting either way (Wait and Park return
// ErrClosed, PollWait too) and returns once it has left the netpoller;
// WakeFD is the eventfd Close writes, for a caller that polls with its own
// descriptors. Release frees the eventfd once nobody can wait any more.
// Waiting allocates nothing: pass a ready function made once (a method
// value bound when the queue opens).
package rxwait
