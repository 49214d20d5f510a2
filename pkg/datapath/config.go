package datapath

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/vswitch/vswitch/pkg/backend"
)

// Mode is the forwarding mode.
type Mode int

const (
	// ModeVEPA sends everything to the adjacent bridge (reflective relay).
	ModeVEPA Mode = iota
	// ModeVEB switches known local unicast and floods locally (fallback
	// when the bridge refuses reflective relay).
	ModeVEB
)

func (m Mode) String() string {
	if m == ModeVEB {
		return "veb"
	}
	return "vepa"
}

// ParseMode parses "vepa" or "veb".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "vepa", "":
		return ModeVEPA, nil
	case "veb":
		return ModeVEB, nil
	}
	return 0, fmt.Errorf("invalid mode %q: use vepa or veb", s)
}

// Config configures a Switch.
type Config struct {
	Uplink  string
	Mode    Mode
	Backend backend.Backend
	// UplinkQueues is the number of uplink RX workers (fanout members or
	// AF_XDP queues). Default 1.
	UplinkQueues int
	// MTU of the VM ports (default 1500): longer frames are malformed.
	MTU int
	// Aging of learned FDB entries (default 300 s).
	Aging time.Duration
	// Batch size (default DefaultBatch).
	Batch int
	// Control receives the control frames of the uplink (to an 802.1
	// link-local group address 01:80:c2:00:00:0x, LLDP or ECP), under
	// either backend; the datapath counts them (CounterSnapshot.Control).
	// frame is a view into the receive buffer, valid during the call only
	// (copy what you keep), so a flood of them allocates nothing. It runs
	// on an uplink worker, the hot path, possibly on several at once: it
	// must not block, and returns false when it cannot take the frame
	// (counted as control_overrun). Nil: they are counted as
	// control_unhandled. The control plane transmits with
	// Switch.SendControl.
	Control func(frame []byte) bool
	// FirstFrame is called with a port's name when a port watched with
	// Switch.WatchFirstFrame takes its first frame from the VM, once per
	// WatchFirstFrame. It runs on the port's worker, the hot path: it must
	// not block, nor call back into the Switch (hand the work over).
	FirstFrame func(port string)
	// Priority is the scheduling policy of the datapath threads: the
	// workers are goroutines that may run on any thread of the process,
	// so Start gives it to every thread but the Go runtime's monitor
	// (see thread_linux.go). Zero: unchanged.
	Priority Priority
	// FDB bounds the learned MACs per port, per VLAN and in all (zero
	// values: the defaults).
	FDB FDBLimits
	// Workers, when set, is told how many worker goroutines run (one
	// per uplink RX queue and one per attached port) whenever that
	// changes. It is called with the switch's configuration lock held:
	// it must not block or call the Switch. A worker waiting in a
	// blocking system call holds one of the Go runtime's Ps; vswitchd
	// gives the runtime one more P per worker (internal/daemon).
	Workers func(n int)
	// CPUPoll receives the queues at light load on the CPU where their
	// frames arrive (internal/cpupoll: a poller per CPU, sleeping there;
	// see polled.go). Queues of backends that cannot be polled, and all
	// queues while frames stream, are received by their workers as
	// without it.
	CPUPoll bool
	Logger  *slog.Logger
}

func (c *Config) setDefaults() {
	if c.UplinkQueues <= 0 {
		c.UplinkQueues = 1
	}
	if c.MTU <= 0 {
		c.MTU = 1500
	}
	if c.Aging <= 0 {
		c.Aging = 300 * time.Second
	}
	if c.Batch <= 0 {
		c.Batch = backend.DefaultBatch
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.FDB = c.FDB.withDefaults()
}

func isZeroMAC(m []byte) bool {
	return m[0]|m[1]|m[2]|m[3]|m[4]|m[5] == 0
}

// isLinkLocal reports 01:80:c2:00:00:00-0f.
func isLinkLocal(d []byte) bool {
	return d[0] == 0x01 && d[1] == 0x80 && d[2] == 0xc2 && d[3] == 0 && d[4] == 0 && d[5]&0xf0 == 0
}

// Control-plane ethertypes.
const (
	EtherTypeLLDP = 0x88cc
	EtherTypeECP  = 0x8940
)

// Priority is the scheduling policy of the datapath threads. Kernel
// switching (macvlan, bridge) runs in softirq, ahead of every task; a
// userspace switch that competes on equal terms with the VMs it serves
// falls behind under load and burns the CPU it does get on frames the rings
// then drop. Giving the datapath threads the lowest real-time priority
// restores that ordering, while kernel RT throttling (95 % by default) keeps
// the rest of the host alive.
type Priority struct {
	Nice     int // CFS nice value (-20..19), used when RealTime is 0
	RealTime int // SCHED_RR priority (1..99); 0 = not real-time
}

// String describes the policy for logs and status.
func (p Priority) String() string {
	switch {
	case p.RealTime > 0:
		return fmt.Sprintf("SCHED_RR %d", p.RealTime)
	case p.Nice != 0:
		return fmt.Sprintf("nice %d", p.Nice)
	}
	return "normal"
}
