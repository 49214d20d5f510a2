// Package cpupoll runs a switch's receive work on the CPU where the frames
// arrived, as the kernel's softirq does: one poller per CPU, a goroutine
// whose thread sleeps on that CPU in epoll_wait on the sockets whose frames
// arrive there and, woken, runs their receive work itself.
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
// waiter that sleeps on CPU 0 is woken without an interrupt, and preempts
// the VM's thread (the datapath runs at real-time priority) the way
// softirq would. Traced there: a crossing from the VM's transmit to the
// wake-up of the VM on the other side in 30-80 us, no interrupt but the
// one that wakes that VM (macvlan pays it too). Measured with the
// benchmark's prober pinned to CPU 0 and its responder to CPU 1
// (VSBENCH_PIN), AF_PACKET: light-load p50 83-86 us against 179-192 us
// through the netpoller with busy polling (macvlan-vepa 67-95 us);
// unpinned, 81-131 us against 123-132 us (macvlan-vepa 48-82 us).
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
// # Staying on its CPU
//
// The poller's thread is not pinned. Before it sleeps, a poller that finds
// itself on another CPU moves its thread home (affinity to its CPU alone,
// which migrates it, then back to all), at most once per SweepEvery: the
// kernel wakes a real-time thread on the CPU it last ran on, unless a
// real-time thread of the same or higher priority runs there, and then on
// another CPU, where it runs at once. A pinned poller waited behind such
// threads instead (other busy switches on the test machine: light-load
// p99 5-9 ms), and so did one moved home after every such wake-up (the
// migration completes only once the thread runs on its CPU): p99 2.7-4.3
// ms beside the rest of the test suite, 0.7-1.6 ms with the move at most
// every SweepEvery and made one real-time level up (the thread preempts
// whatever runs there for the three system calls of the move).
//
// # The Go runtime
//
// A poller is a goroutine locked to its thread (runtime.LockOSThread)
// that sleeps in a blocking epoll_wait. It must go through the scheduler
// at least every 10 ms, asleep in the system call or not: the runtime's
// monitor (sysmon) preempts a goroutine on the same scheduling for 10 ms,
// interrupting the system call with a signal and taking its P (measured:
// light-load p99 6.7 ms). So the poller sleeps at most until its next
// runtime.Gosched is due, every SchedEvery. A locked goroutine's Gosched
// hands its P to another thread and back (two futex wake-ups) and resumes
// on its own thread; the poller pins that thread to its CPU for the
// Gosched, or the kernel woke it on the other CPU every time (the thread
// handing the P back runs on this one). Unlocked, it resumed on whatever
// thread took it, often on the other CPU. Either way the pollers ended on
// each other's CPUs, and light-load p50 was no better than the
// netpoller's; pinned for the Gosched, with the VMs pinned as below:
// 83-86 us against 179-192 us. Gosched is
// never called on a frame's path: a polled queue's rxwait.Waiter does not
// yield in Received either (its wake-up of an idle thread, wakep, is an
// interrupt of another CPU). A poller's thread holds its P while it
// sleeps, so the process needs one P per poller on top of the others
// (Pollers).
//
// A poller that saw no event for ParkAfter (100 ms: the benchmark's
// light load sends a probe every 10 ms) parks in the Go netpoller: its
// epoll instance joins another one the netpoller watches, and the poller
// holds no thread and no P until an event (or the next sweep) wakes it,
// on whatever thread polls; it moves home and stays awake while events
// come. Idle with 8 ports: 0.1-0.5 % of a CPU (the 8 ms sleeps alone cost
// 0.9-1.2 %).
package cpupoll
