package afxdp

import (
	"log/slog"

	"github.com/vswitch/vswitch/internal/rxwait"
)

// XDPMode chooses where the XDP program runs.
type XDPMode int

const (
	// XDPModeAuto tries native (driver) mode and falls back to generic.
	XDPModeAuto XDPMode = iota
	// XDPModeNative requires driver mode.
	XDPModeNative
	// XDPModeGeneric forces generic (skb) mode.
	XDPModeGeneric
)

// Options tune a Backend. The zero value is the production default.
type Options struct {
	// Logger receives attach/detach and fallback messages (default slog.Default()).
	Logger *slog.Logger
	// XDPMode selects native or generic XDP (default: native, else generic).
	XDPMode XDPMode
	// NoZeroCopy skips the XDP_ZEROCOPY bind attempt.
	NoZeroCopy bool
	// BusyPoll, if not nil, is the busy poll the receiving queues join
	// (internal/rxwait.Group: one for the whole process, shared with the
	// other backend's queues).
	BusyPoll *rxwait.Group

	// noVLANHint loads the plain program only (tests: shows what is lost
	// without it).
	noVLANHint bool
	// keepRxVLANOffload leaves the interface's rx VLAN offload alone.
	keepRxVLANOffload bool
}
