//go:build !linux

package cpupoll

import "errors"

// Set is not available off Linux: New fails.
type Set struct{}

// Stats are a Set's counters.
type Stats struct {
	Pollers                            int
	Wakeups, Runs, Moves, Parks, Homes uint64
	PinErr                             string
}

// Target is not available off Linux.
type Target struct{}

var errUnsupported = errors.New("cpu pollers need Linux")

// ErrFull is Add's error when maxTargets targets exist.
var ErrFull = errors.New("cpu pollers: too many targets")

// New fails: the pollers need Linux's epoll and sched_setaffinity.
func New(int, int) (*Set, error) { return nil, errUnsupported }

// Pollers is 0.
func (s *Set) Pollers() int { return 0 }

// CPUs is empty.
func (s *Set) CPUs() []int { return nil }

// Stats is empty.
func (s *Set) Stats() Stats { return Stats{} }

// Close does nothing.
func (s *Set) Close() {}

// Add fails.
func (s *Set) Add(int, func(int) bool) (*Target, error) { return nil, errUnsupported }

// Enable fails.
func (t *Target) Enable(int) error { return errUnsupported }

// Move fails.
func (t *Target) Move(int) error { return errUnsupported }

// Disable does nothing.
func (t *Target) Disable() {}

// CPU is -1.
func (t *Target) CPU() int { return -1 }

// Remove does nothing.
func (t *Target) Remove() {}
