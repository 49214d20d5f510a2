//go:build !linux

package rxwait

import (
	"errors"
	"time"
)

// NewGroup fails: busy polling needs Linux's epoll.
func NewGroup(time.Duration) (*Group, error) { return nil, errors.New("busy polling needs Linux") }

// Close does nothing.
func (g *Group) Close() error { return nil }
