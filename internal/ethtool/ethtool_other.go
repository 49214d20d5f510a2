//go:build !linux

package ethtool

import "errors"

// Restore is what Disable switched off (Linux only).
type Restore struct{}

// Names lists the features that were switched off.
func (r *Restore) Names() []string { return nil }

// Disable is not supported on this OS.
func Disable(ifname string, names ...string) (*Restore, error) {
	return nil, errors.ErrUnsupported
}

// Restore does nothing.
func (r *Restore) Restore() error { return nil }

// Enabled is not supported on this OS.
func Enabled(ifname, name string) (bool, error) { return false, errors.ErrUnsupported }

// RXQueues is not supported on this OS.
func RXQueues(ifname string) (int, error) { return 0, errors.ErrUnsupported }
