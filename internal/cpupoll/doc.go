// Package cpupoll runs a switch's receive work on the CPU where the frames
// arrived, as the kernel's softirq does: one poller per CPU, a thread pinned
// to that CPU that sleeps in epoll_wait on the sockets whose frames arrive
// there and, woken, runs their receive work itself.
//
// # Why
//
// At light load a frame crossing a user-space switch starts with a
// wake-up: the switch's thread sleeps, the VM's frame wakes it. The kernel
// wakes the thread where it last ran, and on a hypervisor whose CPUs idle
// that is often another CPU than the VM's, halted: an inter-processor
// interrupt, measured with ftrace on the 2-vCPU benchmark machine at
// 17-50 us to the thread running plus 10-18 us of the waker's own time to
// send it. The Go runtime's netpoller cannot help: one thread sleeps in
// epoll_wait for the whole process, wherever it last ran. A frame the VM
// sent on CPU 0 wakes the socket's waiters on CPU 0 (the VM's transmit
// runs the receive side of the veth or tap in its own softirq), so a
// waiter pinned to CPU 0 is woken without an interrupt, and preempts the
// VM's thread (the datapath runs at real-time priority) the way softirq
// would. Measured there with the prober pinned to CPU 0 and the responder
// to CPU 1: light-load round trip p50 104 us against 174-209 us through
// the netpoller.
//
// # How
//
// A Target is a descriptor (a socket, edge-triggered) and the work to run
// when it signals: fn receives at most one batch and reports whether more
// may be waiting; the poller then runs it again after the other ready
// targets (NAPI's budget: one busy queue does not starve the others on its
// CPU). A Target belongs to one poller at a time (Enable, Move) or to none
// (Disable: its owner receives it some other way, such as a goroutine of
// its own under load). fn runs under the Target's lock: never twice at
// once, and a wake-up that finds it running makes the runner go round
// again, so no frame is slept on. Every SweepEvery a poller runs all its
// targets once whatever woke it (a queue's watchdog must look now and
// then even when nothing arrives).
//
// # The Go runtime
//
// A poller is a goroutine that sleeps in a blocking epoll_wait on the
// thread it runs on, pinned to its CPU with sched_setaffinity. It is not
// locked to that thread (runtime.LockOSThread): a locked goroutine can
// only go through the scheduler by handing its P to another thread and
// back, two thread wake-ups, and it must go through the scheduler at
// least every 10 ms, or the runtime's monitor (sysmon) preempts it and
// takes its P away on its way back from the system call (a futex wake of
// the monitor on the frame's path, then that hand-over). So the poller
// sleeps at most SleepMax at a time and calls runtime.Gosched at least
// every SchedEvery; an unlocked goroutine's Gosched costs a microsecond
// and usually resumes on the same thread. When it resumes on another (the
// garbage collector moves goroutines too), the poller unpins the old
// thread (any thread may run any goroutine later: a worker confined to one
// CPU would halve a stream's throughput) and pins the new one, before it
// sleeps. A poller's thread holds its P while it sleeps, so the process
// needs one P per poller on top of the others (Pollers).
//
// A poller wakes SleepMax apart when idle: 250 wake-ups a second per
// CPU, a few microseconds each.
package cpupoll
