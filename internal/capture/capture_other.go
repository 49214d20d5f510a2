//go:build !linux

package capture

import (
	"context"
	"fmt"
	"io"
)

// Capture is a packet capture on one interface. On this OS it cannot be
// opened.
type Capture struct{}

// Open reports ErrUnsupported: packet capture needs Linux.
func Open(ifname string) (*Capture, error) { return Limit{}.Open(ifname) }

// Open reports ErrUnsupported: packet capture needs Linux.
func (l Limit) Open(ifname string) (*Capture, error) {
	return nil, fmt.Errorf("capture on %s: %w", ifname, ErrUnsupported)
}

// Ifname is the interface the capture is bound to.
func (c *Capture) Ifname() string { return "" }

// Run reports ErrUnsupported.
func (c *Capture) Run(ctx context.Context, w io.Writer, opt Options) (Stats, error) {
	return Stats{}, ErrUnsupported
}

// Close does nothing.
func (c *Capture) Close() error { return nil }
