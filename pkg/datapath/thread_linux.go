package datapath

import (
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pinWorker locks the calling goroutine to its OS thread and applies the
// policy to that thread. It returns the function to defer: a thread whose
// policy changed is not handed back to the Go runtime (it exits with the
// goroutine), so no other goroutine ever runs with it.
func (s *Switch) pinWorker() func() {
	p := s.cfg.Priority
	runtime.LockOSThread()
	var err error
	switch {
	case p.RealTime > 0:
		param := struct{ prio int32 }{int32(p.RealTime)}
		if _, _, e := unix.Syscall(unix.SYS_SCHED_SETSCHEDULER, 0, uintptr(unix.SCHED_RR), uintptr(unsafe.Pointer(&param))); e != 0 {
			err = e
		}
	case p.Nice != 0:
		err = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), p.Nice)
	default:
		return runtime.UnlockOSThread
	}
	if err != nil {
		s.prioWarn.Do(func() {
			s.log.Warn("cannot set the datapath threads' priority; they run at normal priority (needs CAP_SYS_NICE)", "priority", p, "err", err)
		})
		return runtime.UnlockOSThread
	}
	return func() {}
}
