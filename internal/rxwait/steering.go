package rxwait

import (
	"sync"
	"sync/atomic"
)

// Steering is the mode of a BPF program that spreads a group of receiving
// queues' frames (pkg/afpacket's fanout program, pkg/afxdp's XDP
// program): by the CPU that received a frame while no queue of the group
// streams, so that a frame wakes the CPU poller of its own CPU; by flow
// (the frame's MAC pair) while one does (waits on its own thread: Spread),
// since a stream through a veth follows its sending thread from CPU to
// CPU and would split over the queues, out of order. The queues Note when
// they start and stop streaming; the mode, 1 while any does, is stored
// where the program reads it (a word of a memory-mapped BPF array).
type Steering struct {
	mu        sync.Mutex
	streaming int
	mode      *uint32
}

// SetMode makes the steering store its mode at p (nil: store nothing, for
// a program that is gone or never was), and stores the current one.
func (s *Steering) SetMode(p *uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mode = p
	s.storeLocked()
}

// Note counts a queue that starts (on) or stops streaming.
func (s *Steering) Note(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if on {
		s.streaming++
	} else {
		s.streaming--
	}
	s.storeLocked()
}

// Streaming is the number of queues streaming now.
func (s *Steering) Streaming() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streaming
}

func (s *Steering) storeLocked() {
	if s.mode == nil {
		return
	}
	mode := uint32(0)
	if s.streaming > 0 {
		mode = 1
	}
	atomic.StoreUint32(s.mode, mode)
}
