//go:build linux

package cpupoll

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// How a poller sleeps and sweeps (see the package documentation).
const (
	// SleepMax is the longest a poller sleeps in one epoll_wait.
	SleepMax = 8 * time.Millisecond
	// SchedEvery: a poller goes through the Go scheduler at least this
	// often (the runtime's monitor preempts after 10 ms).
	SchedEvery = 8 * time.Millisecond
	// SweepEvery: a poller runs each of its targets at least this often,
	// woken or not.
	SweepEvery = 500 * time.Millisecond
	// ParkAfter: a poller that saw no event for this long parks in the
	// Go netpoller (and wakes only for an event, or to sweep).
	ParkAfter = 100 * time.Millisecond
	// batchEvents is how many epoll events a poller takes at once.
	batchEvents = 64
)

// Set is one poller per CPU the process may run on.
type Set struct {
	pollers []*poller
	byCPU   []*poller   // indexed by CPU number; nil where none
	all     unix.CPUSet // the process's CPUs when the Set was made
	base    time.Time
	rt      int // SCHED_RR priority of the threads (0: not real-time)

	mu    sync.Mutex // table slots
	table []atomic.Pointer[Target]
	free  []int

	closed atomic.Bool
	wg     sync.WaitGroup

	wakeups, runs, moves, parks, homes atomic.Uint64
	pinErr                             atomic.Pointer[error]
}

// Stats are a Set's counters since New.
type Stats struct {
	Pollers int    // one per CPU
	Wakeups uint64 // a poller woke up for work (not its timeout)
	Runs    uint64 // target runs (one batch each at most)
	Moves   uint64 // targets moved to another CPU's poller
	Parks   uint64 // pollers parked in the netpoller after ParkAfter quiet
	Homes   uint64 // pollers moved back to their CPU (see pin)
	// PinErr says why a poller could not be moved to its CPU (it then
	// runs wherever the kernel puts it), empty when all could.
	PinErr string
}

type poller struct {
	s   *Set
	cpu int
	ep  int
	efd int // Close's wake-up
	// park is an epoll instance the Go netpoller watches, which watches
	// ep while the poller parks (and nothing otherwise); parkRC reads it;
	// parkFn is park's check, parkLooked its state.
	park       *os.File
	parkEp     int // park's descriptor (os.File.Fd would make it blocking)
	parkRC     syscall.RawConn
	parkFn     func(uintptr) bool
	parkLooked bool
	active     time.Duration // when the last event came (Set.since)
	homed      time.Duration // when pin last moved the thread home
	now        []*Target     // targets that have more: run again next round
	next       []*Target
	swept      []*Target  // sweep's list
	mu         sync.Mutex // members
	member     map[*Target]struct{}
}

// Target is a descriptor a poller watches and the work it runs when the
// descriptor signals (see New's Add).
type Target struct {
	s   *Set
	tok int // index in s.table + 1 (0 is a poller's eventfd)
	fd  int
	fn  func(cpu int) bool

	run     sync.Mutex // held while fn runs
	pending atomic.Bool
	removed bool // under run

	emu sync.Mutex // on
	on  *poller
}

// New starts a poller on every CPU the process may run on; at most
// maxTargets targets can be added.
//
// rt is the SCHED_RR priority the process's threads run at (0: not
// real-time); a poller moving its thread home goes one level above it for
// the move (see pin).
func New(maxTargets, rt int) (*Set, error) {
	if rt >= 99 {
		rt = 0 // no level above
	}
	s := &Set{base: time.Now(), table: make([]atomic.Pointer[Target], maxTargets), rt: rt}
	if err := unix.SchedGetaffinity(0, &s.all); err != nil {
		return nil, fmt.Errorf("cpu pollers: CPUs of the process: %w", err)
	}
	for cpu := 0; cpu < len(s.all)*64; cpu++ {
		if !s.all.IsSet(cpu) {
			continue
		}
		p, err := newPoller(s, cpu)
		if err != nil {
			s.Close()
			return nil, err
		}
		for len(s.byCPU) <= cpu {
			s.byCPU = append(s.byCPU, nil)
		}
		s.byCPU[cpu] = p
		s.pollers = append(s.pollers, p)
	}
	for i := maxTargets - 1; i >= 0; i-- {
		s.free = append(s.free, i)
	}
	for _, p := range s.pollers {
		s.wg.Add(1)
		go p.loop()
	}
	return s, nil
}

func newPoller(s *Set, cpu int) (*poller, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("cpu poller %d: epoll instance: %w", cpu, err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(ep)
		return nil, fmt.Errorf("cpu poller %d: eventfd: %w", cpu, err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: 0}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, efd, &ev); err != nil {
		unix.Close(ep)
		unix.Close(efd)
		return nil, fmt.Errorf("cpu poller %d: watch eventfd: %w", cpu, err)
	}
	pep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err == nil {
		if err = unix.SetNonblock(pep, true); err != nil {
			unix.Close(pep)
		}
	}
	if err != nil {
		unix.Close(ep)
		unix.Close(efd)
		return nil, fmt.Errorf("cpu poller %d: epoll instance to park on: %w", cpu, err)
	}
	f := os.NewFile(uintptr(pep), "cpupoll") // non-blocking: joins the netpoller
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		unix.Close(ep)
		unix.Close(efd)
		return nil, fmt.Errorf("cpu poller %d: register with the netpoller: %w", cpu, err)
	}
	p := &poller{s: s, cpu: cpu, ep: ep, efd: efd, park: f, parkEp: pep, parkRC: rc, member: map[*Target]struct{}{}}
	p.parkFn = p.parkCheck
	return p, nil
}

// Pollers is the number of pollers (CPUs): each holds a P of the Go
// runtime while it sleeps.
func (s *Set) Pollers() int { return len(s.pollers) }

// Stats returns the Set's counters.
func (s *Set) Stats() Stats {
	st := Stats{Pollers: len(s.pollers), Wakeups: s.wakeups.Load(), Runs: s.runs.Load(), Moves: s.moves.Load(), Parks: s.parks.Load(), Homes: s.homes.Load()}
	if e := s.pinErr.Load(); e != nil {
		st.PinErr = (*e).Error()
	}
	return st
}

// Close stops the pollers and waits for them. Remove every target first.
func (s *Set) Close() {
	if s.closed.Swap(true) {
		return
	}
	one := [8]byte{1}
	for _, p := range s.pollers {
		_, _ = unix.Write(p.efd, one[:])
	}
	s.wg.Wait()
	for _, p := range s.pollers {
		p.park.Close()
		unix.Close(p.ep)
		unix.Close(p.efd)
	}
}

// ErrFull is Add's error when maxTargets targets exist.
var ErrFull = errors.New("cpu pollers: too many targets")

// Add makes a Target for descriptor fd, not watched yet (Enable). fn is
// its work, run on the poller of cpu (its argument) when fd signals
// (edge-triggered: once per new event) and at least every SweepEvery
// while enabled: receive at most one batch, and report whether more may
// be waiting (it then runs again after the poller's other ready targets).
// fn may call the Target's Move and Disable.
func (s *Set) Add(fd int, fn func(cpu int) bool) (*Target, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.free) == 0 {
		return nil, ErrFull
	}
	i := s.free[len(s.free)-1]
	s.free = s.free[:len(s.free)-1]
	t := &Target{s: s, tok: i + 1, fd: fd, fn: fn}
	s.table[i].Store(t)
	return t, nil
}

// poller returns the poller of cpu, or the first one for a CPU that has
// none.
func (s *Set) poller(cpu int) *poller {
	if cpu >= 0 && cpu < len(s.byCPU) && s.byCPU[cpu] != nil {
		return s.byCPU[cpu]
	}
	return s.pollers[0]
}

// Enable has the poller of cpu (the first one when cpu has none) watch
// the target, or Move it there when another does. A descriptor that is
// already readable runs it at once.
func (t *Target) Enable(cpu int) error {
	t.emu.Lock()
	defer t.emu.Unlock()
	return t.moveLocked(t.s.poller(cpu))
}

// Move is Enable for a target that runs somewhere already: a no-op when
// it is disabled or already on cpu's poller.
func (t *Target) Move(cpu int) error {
	t.emu.Lock()
	defer t.emu.Unlock()
	if t.on == nil || t.on.cpu == cpu {
		return nil
	}
	p := t.s.poller(cpu)
	if p == t.on {
		return nil
	}
	if err := t.moveLocked(p); err != nil {
		return err
	}
	t.s.moves.Add(1)
	return nil
}

func (t *Target) moveLocked(p *poller) error {
	if t.on == p {
		return nil
	}
	old := t.on
	t.disableLocked()
	if err := t.watchLocked(p); err != nil {
		if old != nil && t.watchLocked(old) == nil {
			return nil // stays where it was
		}
		return err
	}
	return nil
}

// watchLocked adds the target to p's epoll instance and members.
func (t *Target) watchLocked(p *poller) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(t.tok)}
	if err := unix.EpollCtl(p.ep, unix.EPOLL_CTL_ADD, t.fd, &ev); err != nil {
		return fmt.Errorf("cpu poller %d: watch descriptor %d: %w", p.cpu, t.fd, err)
	}
	p.mu.Lock()
	p.member[t] = struct{}{}
	p.mu.Unlock()
	t.on = p
	return nil
}

// Disable stops watching the target's descriptor (its owner receives
// some other way). fn may still be running, or run once more for an event
// taken before.
func (t *Target) Disable() {
	t.emu.Lock()
	defer t.emu.Unlock()
	t.disableLocked()
}

func (t *Target) disableLocked() {
	p := t.on
	if p == nil {
		return
	}
	_ = unix.EpollCtl(p.ep, unix.EPOLL_CTL_DEL, t.fd, nil) // fails only if fd is closed: then the kernel dropped it
	p.mu.Lock()
	delete(p.member, t)
	p.mu.Unlock()
	t.on = nil
}

// CPU is the CPU whose poller watches the target, -1 when disabled.
func (t *Target) CPU() int {
	t.emu.Lock()
	defer t.emu.Unlock()
	if t.on == nil {
		return -1
	}
	return t.on.cpu
}

// Remove disables the target for good and returns once fn is not running
// (and never will again). Call it before closing the descriptor. fn must
// not call it.
func (t *Target) Remove() {
	t.Disable()
	t.run.Lock()
	t.removed = true
	t.run.Unlock()
	s := t.s
	s.mu.Lock()
	s.table[t.tok-1].Store(nil)
	s.free = append(s.free, t.tok-1)
	s.mu.Unlock()
}

// exec runs fn unless it is running already: the runner then goes round
// again (pending), so that the event that found it busy is not lost. It
// reports whether fn said more may be waiting.
func (t *Target) exec(cpu int) bool {
	t.pending.Store(true)
	for t.pending.Load() {
		if !t.run.TryLock() {
			return false
		}
		t.pending.Store(false)
		more := false
		if !t.removed {
			t.s.runs.Add(1)
			more = t.fn(cpu)
		}
		t.run.Unlock()
		if more {
			return true
		}
	}
	return false
}

// since is the time since the Set was made.
func (s *Set) since() time.Duration { return time.Since(s.base) }

func (p *poller) loop() {
	defer p.s.wg.Done()
	// Locked: the poller keeps one thread, so its Gosched resumes it on
	// the thread that sleeps on its CPU (an unlocked poller resumed on
	// another thread, elsewhere, after many of them; see the package
	// documentation). Never unlocked: the thread ends with the poller.
	runtime.LockOSThread()
	var evs [batchEvents]unix.EpollEvent
	s := p.s
	var sched, sweep time.Duration
	p.active = s.since()
	for {
		now := s.since()
		var (
			n uintptr
			e unix.Errno
		)
		if now-sched >= SchedEvery-time.Millisecond {
			p.gosched()
			sched = now
		}
		switch {
		case len(p.now) > 0:
			// Work waits already: a look that never blocks.
			p.active = now
			n, _, e = unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(p.ep), uintptr(unsafe.Pointer(&evs[0])), batchEvents, 0, 0, 0)
		case now-p.active >= ParkAfter:
			// Quiet: sleep in the netpoller, holding no thread, until an
			// event or the next sweep (scheduled again meanwhile); then
			// look.
			p.sleep() // parked, usually: through the scheduler (not counted on)
			now = s.since()
			p.pin(now)
			n, _, e = unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(p.ep), uintptr(unsafe.Pointer(&evs[0])), batchEvents, 0, 0, 0)
			if e == 0 && n > 0 {
				s.wakeups.Add(1)
			}
		default:
			p.pin(now)
			// Sleeps on this CPU, through the runtime (its P stays ours
			// while idle Ps exist, see the package documentation), no
			// longer than the next Gosched is due: the runtime's monitor
			// must never find the poller 10 ms on one scheduling.
			ms := min(SleepMax, SchedEvery-(now-sched)) / time.Millisecond
			n, _, e = unix.Syscall6(unix.SYS_EPOLL_PWAIT, uintptr(p.ep), uintptr(unsafe.Pointer(&evs[0])), batchEvents,
				uintptr(max(ms, 1)), 0, 0)
			if e == 0 && n > 0 {
				s.wakeups.Add(1)
			}
		}
		if s.closed.Load() {
			return
		}
		if e != 0 {
			n = 0 // EINTR; nothing else can fail on a valid instance
		}
		if n > 0 {
			p.active = now
		}
		// Targets that had more last time go after the new events.
		p.now, p.next = p.next[:0], p.now
		for i := 0; i < int(n); i++ {
			tok := int(evs[i].Fd)
			if tok == 0 {
				var b [8]byte
				_, _ = unix.Read(p.efd, b[:])
				continue
			}
			if t := s.table[tok-1].Load(); t != nil && t.exec(p.cpu) {
				p.now = append(p.now, t)
			}
		}
		for _, t := range p.next {
			if t.exec(p.cpu) {
				p.now = append(p.now, t)
			}
		}
		clear(p.next)
		if now-sweep >= SweepEvery {
			sweep = now
			p.sweep()
		}
	}
}

// sleep parks the poller in the Go netpoller until its epoll instance has
// an event, or for at most SweepEvery. The runtime wakes it on whichever
// thread polls (a wake-up from another CPU: the poller moves that thread
// home, if it did not move one in the last SweepEvery, and stays awake
// while events come).
func (p *poller) sleep() {
	p.s.parks.Add(1)
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(p.ep)}
	if err := unix.EpollCtl(p.parkEp, unix.EPOLL_CTL_ADD, p.ep, &ev); err != nil {
		return // cannot happen; the loop looks at once, as after a wake-up
	}
	_ = p.park.SetReadDeadline(time.Now().Add(SweepEvery))
	p.parkLooked = false
	_ = p.parkRC.Read(p.parkFn) // nil, or the deadline
	_ = unix.EpollCtl(p.parkEp, unix.EPOLL_CTL_DEL, p.ep, nil)
}

// parkCheck is sleep's check: not ready the first time, ready after any
// wake-up (the loop looks at ep itself).
func (p *poller) parkCheck(uintptr) bool {
	if !p.parkLooked {
		p.parkLooked = true
		return false
	}
	return true
}

// sweep runs every target of the poller once (those with more go on
// p.now, unless there already).
func (p *poller) sweep() {
	p.mu.Lock()
	p.swept = p.swept[:0]
	for t := range p.member {
		p.swept = append(p.swept, t)
	}
	p.mu.Unlock()
	for _, t := range p.swept {
		if t.exec(p.cpu) && !slices.Contains(p.now, t) {
			p.now = append(p.now, t)
		}
	}
	clear(p.swept) // keep no removed target reachable
}

// pin moves the thread running the poller to the poller's CPU when it
// runs elsewhere (a Gosched may resume the poller on another thread; the
// kernel wakes a thread on another CPU while its own is busy with a
// real-time thread): affinity to that CPU alone, which migrates it there,
// then back to all the process's CPUs. The thread is not left pinned: the
// kernel wakes a real-time thread on the CPU it last ran on unless a
// real-time thread of the same or higher priority runs there, and then on
// another, where it runs at once instead of waiting behind it (measured
// with hard pinning beside other busy switches: light-load p99 5-9 ms).
func (p *poller) pin(now time.Duration) {
	if now-p.homed < SweepEvery && p.homed != 0 {
		// At most once per sweep: a poller whose CPU is busy with a
		// real-time thread is woken elsewhere, and moving it back each
		// time would displace that thread each time.
		return
	}
	var cpu uint32
	if _, _, e := unix.RawSyscall(unix.SYS_GETCPU, uintptr(unsafe.Pointer(&cpu)), 0, 0); e != 0 || int(cpu) == p.cpu {
		return
	}
	p.homed = now
	// One priority level up while it moves: the migration completes only
	// once the thread runs on its CPU, and a real-time thread of its own
	// level running there would hold it for as long as it runs.
	rt := p.s.rt
	if rt > 0 && !setRR(rt+1) {
		rt = 0
	}
	var set unix.CPUSet
	set.Set(p.cpu)
	err := unix.SchedSetaffinity(0, &set)
	if err == nil {
		_ = unix.SchedSetaffinity(0, &p.s.all)
	}
	if rt > 0 {
		setRR(rt)
	}
	if err != nil {
		p.s.pinFailed(p.cpu, err)
		return
	}
	p.s.homes.Add(1)
}

// pinFailed records the first error moving a poller home.
func (s *Set) pinFailed(cpu int, err error) {
	if s.pinErr.Load() == nil {
		err = fmt.Errorf("move cpu poller to CPU %d: %w", cpu, err)
		s.pinErr.CompareAndSwap(nil, &err)
	}
}

// gosched goes through the Go scheduler with the thread pinned to the
// poller's CPU. A locked goroutine's Gosched hands its P to another thread
// and sleeps until that thread hands it back; the kernel wakes it where it
// last ran unless a real-time thread of its level runs there, and the
// thread that hands the P back runs on this very CPU, since it took over
// there: unpinned, every Gosched moved the poller to the other CPU (traced
// on the 2-CPU benchmark machine: both pollers lived on each other's CPU).
//
// One real-time level up meanwhile, as for the move home: a thread of the
// poller's own level running on its CPU would otherwise hold the pinned
// thread's return for as long as it runs (beside the rest of the test
// suite: light-load p99 2.8-3.6 ms). The thread sleeps while another
// hands the P back, so it makes nobody wait at the higher level.
func (p *poller) gosched() {
	rt := p.s.rt
	if rt > 0 && !setRR(rt+1) {
		rt = 0
	}
	var set unix.CPUSet
	set.Set(p.cpu)
	pinned := unix.SchedSetaffinity(0, &set) == nil
	runtime.Gosched()
	if pinned {
		_ = unix.SchedSetaffinity(0, &p.s.all)
	}
	if rt > 0 {
		setRR(rt)
	}
}

// setRR sets the calling thread's policy to SCHED_RR at prio.
func setRR(prio int) bool {
	param := struct{ prio int32 }{int32(prio)}
	_, _, e := unix.RawSyscall(unix.SYS_SCHED_SETSCHEDULER, 0, uintptr(unix.SCHED_RR), uintptr(unsafe.Pointer(&param)))
	return e == 0
}

// CPUs lists the CPUs that have a poller, in order.
func (s *Set) CPUs() []int {
	cpus := make([]int, len(s.pollers))
	for i, p := range s.pollers {
		cpus[i] = p.cpu
	}
	return cpus
}
