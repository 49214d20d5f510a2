//go:build !linux

package afxdp

import (
	"errors"

	"github.com/vswitch/vswitch/pkg/backend"
)

var errUnsupported = errors.New("afxdp: AF_XDP needs Linux")

// Backend is unavailable outside Linux.
type Backend struct{}

// New returns a backend whose Open always fails.
func New(Options) *Backend { return &Backend{} }

// Name implements backend.Backend.
func (*Backend) Name() string { return "afxdp" }

// Open implements backend.Backend.
func (*Backend) Open(string, backend.QueueConfig) (backend.Queue, error) {
	return nil, errUnsupported
}

// Probe always reports that AF_XDP is unavailable.
func Probe(string) error { return errUnsupported }

// RXQueues is 1 outside Linux.
func RXQueues(string) int { return 1 }
