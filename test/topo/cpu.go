package topo

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// OnCPU runs fn on a thread pinned to cpu, as a VM's vCPU thread would
// send from it: over a veth the receiving side's softirq (an XDP program,
// a packet socket's filter) then runs on that CPU too.
func OnCPU(tb testing.TB, cpu int, fn func()) {
	tb.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // the thread exits with the goroutine: its affinity goes with it
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			done <- err
			return
		}
		fn()
		done <- nil
	}()
	if err := <-done; err != nil {
		tb.Fatalf("pin to CPU %d: %v", cpu, err)
	}
}

// CPUs lists the CPUs the test may run on (its affinity mask).
func CPUs(tb testing.TB) []int {
	tb.Helper()
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		tb.Fatal(err)
	}
	var out []int
	for c := 0; c < len(set)*64; c++ {
		if set.IsSet(c) {
			out = append(out, c)
		}
	}
	return out
}
