//go:build !linux

package cpupoll

import "errors"

// Set is not available off Linux.
type Set struct{}

// Stats are a Set's counters.
type Stats struct {
	Pollers              int
	Wakeups, Runs, Moves uint64
	PinErr               string
}

// Target is not available off Linux.
type Target struct{}

// New fails: the pollers need Linux's epoll and sched_setaffinity.
func New(int, int) (*Set, error) { return nil, errors.New("cpu pollers need Linux") }
