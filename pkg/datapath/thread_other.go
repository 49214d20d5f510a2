//go:build !linux

package datapath

// applyPriority: thread priorities are Linux-only.
func (s *Switch) applyPriority() {}

// workerPriority: thread priorities are Linux-only.
func (s *Switch) workerPriority(*uint32) {}
