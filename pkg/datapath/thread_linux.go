package datapath

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The datapath's priority is a property of the process's threads, not of
// the worker goroutines: the workers are not locked to threads.
//
// They used to be (runtime.LockOSThread, then SCHED_RR on that thread
// alone), and under load that made frames wait for milliseconds. The Go
// runtime's threads are interchangeable and wait for each other in places:
// a goroutine leaving a system call spins (yielding the CPU) while a
// garbage-collector worker on another thread scans its stack, a goroutine
// without a P waits for another thread to hand one over, and the runtime's
// monitor thread (sysmon) takes Ps back from threads blocked in system
// calls. With the workers' threads at SCHED_RR and the others at normal
// priority, the waiting is upside down: a real-time thread yields only to
// real-time threads, so the normal thread it waits for gets no CPU while
// the real-time one spins. Traced with perf sched on the 2-CPU benchmark
// machine, background stream at half of vm->vm saturation: a worker
// thread ran 62 ms without a break and without moving a frame, until a
// normal-priority vswitchd thread, runnable all that time, got a CPU and
// woke it; sysmon spent 3.4 s of a 16 s run runnable but not running;
// probes answered in up to 29 ms.
//
// So every thread that may run Go code gets the policy: at Start all the
// threads the process has, and threads created later inherit the policy
// of the thread that creates them (clone copies it). Workers re-check the
// thread they run on now and then, to catch a thread that escaped (one
// that sysmon created, say).
//
// One thread is left alone: sysmon, which never runs goroutines. It polls
// on 20 us to 10 ms timers while goroutines sit in system calls; at
// SCHED_RR those timers get no slack and it competes with the datapath
// itself. sysmon is the first thread the runtime creates, right after the
// main thread: the earliest started thread besides the main one (lowest
// TID among those started in the same clock tick).
//
// Unlocked workers also leave the runtime free to preempt them cheaply: a
// locked goroutine can only be descheduled by handing its P to another
// thread and back (two more thread wake-ups on a frame's path), which
// sysmon asks for whenever a worker comes back from a poll(2) longer than
// 10 ms, that is on the first frame after a quiet spell.

// prioCheckEvery is how often (in batches) a worker checks its thread's
// policy; the first batch is always checked. (The check is a system call:
// once per batch it cost a few percent of throughput.)
const prioCheckEvery = 64

// applyPriority gives every thread of the process but sysmon the datapath
// policy. It warns once when the policy cannot be set.
func (s *Switch) applyPriority() {
	p := s.cfg.Priority
	if p.RealTime <= 0 && p.Nice == 0 {
		return
	}
	// A thread created while we go through the list may have copied its
	// creator's policy before we changed it: go through the list again
	// until a pass changes nothing.
	for pass := 0; pass < 10; pass++ {
		threads, sysmon, err := processThreads()
		if err != nil {
			s.prioWarn(err)
			return
		}
		changed := false
		for _, tid := range threads {
			if tid == sysmon || threadHasPriority(tid, p) {
				continue
			}
			if err := setThreadPriority(tid, p); err != nil {
				if errors.Is(err, unix.ESRCH) {
					continue // exited meanwhile
				}
				s.prioWarn(err)
				return
			}
			changed = true
		}
		if !changed {
			return
		}
	}
}

// workerPriority makes sure, every prioCheckEvery batches, that the
// calling thread has the datapath policy; workers call it once per batch
// with their own counter.
func (s *Switch) workerPriority(batches *uint32) {
	*batches++
	if *batches%prioCheckEvery != 1 {
		return
	}
	p := s.cfg.Priority
	if (p.RealTime <= 0 && p.Nice == 0) || s.prioFailed.Load() {
		return
	}
	if threadHasPriority(0, p) {
		return
	}
	if err := setThreadPriority(0, p); err != nil {
		s.prioWarn(err)
	}
}

func (s *Switch) prioWarn(err error) {
	s.prioOnce.Do(func() {
		err = fmt.Errorf("set %s: %w", s.cfg.Priority, err)
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			err = fmt.Errorf("%w (needs CAP_SYS_NICE)", err)
		}
		s.prioErr.Store(&err)
		s.log.Warn("cannot set the datapath threads' priority; they run at normal priority (needs CAP_SYS_NICE)", "priority", s.cfg.Priority, "err", err)
	})
	s.prioFailed.Store(true)
}

// threadHasPriority reports whether thread tid (0: the caller) runs with p.
// Raw system calls: they never block, and the runtime need not hear of them.
func threadHasPriority(tid int, p Priority) bool {
	if p.RealTime > 0 {
		pol, _, e := unix.RawSyscall(unix.SYS_SCHED_GETSCHEDULER, uintptr(tid), 0, 0)
		return e == 0 && int(pol)&^unix.SCHED_RESET_ON_FORK == unix.SCHED_RR
	}
	// getpriority returns 20 - nice, so that it is never negative.
	r, _, e := unix.RawSyscall(unix.SYS_GETPRIORITY, unix.PRIO_PROCESS, uintptr(tid), 0)
	return e == 0 && 20-int(r) == p.Nice
}

// setThreadPriority applies p to thread tid (0: the caller).
func setThreadPriority(tid int, p Priority) error {
	if p.RealTime > 0 {
		param := struct{ prio int32 }{int32(p.RealTime)}
		if _, _, e := unix.RawSyscall(unix.SYS_SCHED_SETSCHEDULER, uintptr(tid), uintptr(unix.SCHED_RR), uintptr(unsafe.Pointer(&param))); e != 0 {
			return e
		}
		return nil
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETPRIORITY, unix.PRIO_PROCESS, uintptr(tid), uintptr(p.Nice)); e != 0 {
		return e
	}
	return nil
}

// processThreads lists the process's threads and names sysmon's (0 if it
// cannot tell).
func processThreads() (tids []int, sysmon int, err error) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, 0, err
	}
	var ts []threadStart
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		tids = append(tids, tid)
		b, err := os.ReadFile("/proc/self/task/" + e.Name() + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		if start, ok := statStartTime(string(b)); ok {
			ts = append(ts, threadStart{tid, start})
		}
	}
	return tids, pickSysmon(ts, os.Getpid()), nil
}

// threadStart is a thread and its start time (clock ticks after boot).
type threadStart struct {
	tid   int
	start uint64
}

// pickSysmon names the first thread started after the main one (pid): the
// earliest start time, and of those started in the same clock tick the
// lowest TID (TIDs are handed out in increasing order). 0 if there is none.
func pickSysmon(ts []threadStart, pid int) int {
	best := threadStart{}
	for _, t := range ts {
		if t.tid == pid {
			continue
		}
		if best.tid == 0 || t.start < best.start || t.start == best.start && t.tid < best.tid {
			best = t
		}
	}
	return best.tid
}

// statStartTime returns field 22 (starttime, clock ticks after boot) of a
// /proc/PID/task/TID/stat line.
func statStartTime(stat string) (uint64, bool) {
	i := strings.LastIndexByte(stat, ')') // comm may hold spaces and parentheses
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3
	if len(f) < 20 {
		return 0, false
	}
	v, err := strconv.ParseUint(f[19], 10, 64)
	return v, err == nil
}
