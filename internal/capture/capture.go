package capture

import (
	"errors"
	"time"

	"github.com/vswitch/vswitch/internal/pcapfile"
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
	// ErrTooManySessions: Limit.Max captures are running already.
	ErrTooManySessions = errors.New("too many captures running")
)

// Session bound defaults (see "How many at once" in the package
// documentation).
const (
	// MaxSessions is how many captures may run at once on one host.
	MaxSessions = 8
	// SessionDir holds one lock file per capture slot.
	SessionDir = "/run/vswitchd/captures"
)

// Limit bounds how many captures run at once: each open Capture holds one
// of Max slots, an flock on the lock file slot-N.lock in Dir, until Close
// or until its process dies. The zero value is the host-wide default
// (MaxSessions slots in SessionDir).
type Limit struct {
	Dir string // default SessionDir
	Max int    // default MaxSessions
}

func (l Limit) withDefaults() Limit {
	if l.Dir == "" {
		l.Dir = SessionDir
	}
	if l.Max <= 0 {
		l.Max = MaxSessions
	}
	return l
}

// Options says what Run records, how, and when it stops.
type Options struct {
	// Count stops the capture after this many frames; 0 means no limit.
	Count int
	// Timeout stops the capture after this long; 0 means no limit.
	Timeout time.Duration
	// Format of the file (the zero value is pcapng, where each frame says
	// its direction).
	Format pcapfile.Format
	// Direction keeps the frames the interface received ("in"), those the
	// host sent on it ("out"), or both (anything else).
	Direction string
	// Snaplen is the most bytes kept of each frame; 0 means Snaplen.
	Snaplen int
}

// Stats is what one Run recorded.
type Stats struct {
	// Frames written to the file.
	Frames int
	// Drops is the number of frames the kernel dropped because the socket's
	// receive buffer was full (PACKET_STATISTICS tp_drops) during the Run.
	Drops uint32
}
