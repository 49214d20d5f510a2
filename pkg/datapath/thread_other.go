//go:build !linux

package datapath

import "runtime"

// pinWorker locks the goroutine to its thread; priorities are Linux-only.
func (s *Switch) pinWorker() func() {
	runtime.LockOSThread()
	return runtime.UnlockOSThread
}
