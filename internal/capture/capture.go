package capture

import (
	"errors"
	"time"
)

// Snaplen is the most bytes of one frame a capture keeps, and the snaplen
// written in the pcap file header.
const Snaplen = 65535

// Errors Open and Run wrap, so callers can word their own advice.
var (
	// ErrNoInterface: no interface of that name in the caller's network
	// namespace.
	ErrNoInterface = errors.New("no such interface")
	// ErrPermission: the process may not open packet sockets.
	ErrPermission = errors.New("capture needs root (CAP_NET_RAW)")
	// ErrInterfaceGone: the interface was deleted (or moved to another
	// namespace) while the capture ran.
	ErrInterfaceGone = errors.New("interface disappeared")
	// ErrUnsupported: packet capture is only implemented on Linux.
	ErrUnsupported = errors.New("packet capture needs Linux (AF_PACKET)")
)

// Options says when Run stops.
type Options struct {
	// Count stops the capture after this many frames; 0 means no limit.
	Count int
	// Timeout stops the capture after this long; 0 means no limit.
	Timeout time.Duration
}

// Stats is what one Run recorded.
type Stats struct {
	// Frames written to the pcap.
	Frames int
	// Drops is the number of frames the kernel dropped because the socket's
	// receive buffer was full (PACKET_STATISTICS tp_drops) during the Run.
	Drops uint32
}
