//go:build unix

package store

import (
	"os"
	"syscall"
)

// errWouldBlock: another process holds the lock.
var errWouldBlock error = syscall.EWOULDBLOCK

// flock takes f's flock without waiting, exclusive or shared, as bbolt does
// (bbolt then takes it again on the same file: a no-op).
func flock(f *os.File, exclusive bool) error {
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	return syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
}
