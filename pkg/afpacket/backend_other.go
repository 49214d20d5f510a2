//go:build !linux

package afpacket

import (
	"errors"
	"time"

	"github.com/vswitch/vswitch/pkg/backend"
)

// ErrUnsupported is returned by Open on systems without AF_PACKET.
var ErrUnsupported = errors.New("afpacket: AF_PACKET is only available on Linux")

// Backend is the AF_PACKET backend; on this OS Open always fails.
type Backend struct {
	BlockSize    int
	Blocks       int
	BlockTimeout time.Duration
}

// New returns a Backend.
func New() *Backend { return &Backend{} }

// Name implements backend.Backend.
func (b *Backend) Name() string { return "afpacket" }

// Open implements backend.Backend.
func (b *Backend) Open(ifname string, cfg backend.QueueConfig) (backend.Queue, error) {
	return nil, ErrUnsupported
}
