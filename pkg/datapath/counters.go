package datapath

import (
	"maps"
	"sync/atomic"

	"github.com/vswitch/vswitch/pkg/backend"
)

// Reason is why a frame was dropped. Every drop is counted under one.
type Reason int

// Drop reasons; their String values are the JSON/metrics names.
const (
	DropMalformed      Reason = iota // runt, over MTU, truncated or >2 tags
	DropTaggedOnAccess               // a VM sent a tagged frame on an access port
	DropBadSrc                       // multicast or all-zero source MAC
	DropSpoofedSrc                   // source not among the port's registered MACs, or registered by another port of the VLAN
	DropVLANNotAllowed               // trunk: VID not allowed / untagged without native VLAN
	DropUnknownVLAN                  // uplink: untagged or VID no port uses
	DropUnknownDst                   // uplink: unicast to a MAC not in the FDB
	DropLinkLocal                    // a VM sent an 802.1 link-local/LLDP/ECP frame
	DropPortDown                     // destination port has no queue (tap absent)
	DropTxError                      // the backend refused the frame
	DropControl                      // control frame and no control-plane handler
	DropReflection                   // a VM's own broadcast reflected back by the relay
	DropRxOverrun                    // the receive ring was full (the switch fell behind)
	DropControlOverrun               // the control plane could not take a control frame (fell behind)
	DropMACLimit                     // a new source MAC beyond the port's learned-MAC limit
	DropFDBFull                      // a new source MAC beyond the limit of its VLAN or of the FDB
	DropMACMoveLimit                 // a MAC another port is using moved here too often
	DropVIDUnassigned                // the port waits for the bridge to assign its VLAN (VDP): it forwards nothing
	numReasons
)

var reasonNames = [numReasons]string{
	"malformed", "tagged_on_access", "bad_src", "spoofed_src", "vlan_not_allowed",
	"unknown_vlan", "unknown_dst", "link_local", "port_down", "tx_error", "control_unhandled", "reflection", "rx_overrun",
	"control_overrun", "mac_limit", "fdb_full", "mac_move_limit", "vid_unassigned",
}

func (r Reason) String() string {
	if r < 0 || r >= numReasons {
		return "unknown"
	}
	return reasonNames[r]
}

// Reasons lists every drop reason.
func Reasons() []Reason {
	out := make([]Reason, numReasons)
	for i := range out {
		out[i] = Reason(i)
	}
	return out
}

// Counters are one port's (or the uplink's) packet counters. RX is what the
// switch received on the interface, TX what it sent out of it.
type Counters struct {
	RxPackets, RxBytes atomic.Uint64
	TxPackets, TxBytes atomic.Uint64
	// MACMoves counts learned MACs the port took over from another port.
	MACMoves atomic.Uint64
	drops    [numReasons]atomic.Uint64
}

// Drop counts n drops for r.
func (c *Counters) Drop(r Reason, n uint64) { c.drops[r].Add(n) }

// Drops returns the non-zero drop counts by reason name.
func (c *Counters) Drops() map[string]uint64 {
	m := make(map[string]uint64)
	for i := range c.drops {
		if v := c.drops[i].Load(); v != 0 {
			m[Reason(i).String()] = v
		}
	}
	return m
}

// addDrops adds o's drops to c's.
func (c *Counters) addDrops(o *Counters) {
	for i := range c.drops {
		c.drops[i].Add(o.drops[i].Load())
	}
}

// addQueueDrops adds a queue's own drops to a counter snapshot.
func (cs *CounterSnapshot) addQueueDrops(st backend.QueueStats) {
	if st.RxOversize != 0 {
		cs.Drops[DropMalformed.String()] += st.RxOversize
	}
	if st.RxDropped != 0 {
		cs.Drops[DropRxOverrun.String()] += st.RxDropped
	}
}

// foldQueueDrops adds a closing queue's own drops to the counters for good.
func (c *Counters) foldQueueDrops(st backend.QueueStats) {
	c.Drop(DropMalformed, st.RxOversize)
	c.Drop(DropRxOverrun, st.RxDropped)
}

// DropCount returns the count for one reason.
func (c *Counters) DropCount(r Reason) uint64 { return c.drops[r].Load() }

// CounterSnapshot is a plain copy of Counters.
type CounterSnapshot struct {
	RxPackets, RxBytes, TxPackets, TxBytes uint64
	// MACMoves is how many learned MACs the port took over from another
	// port (a VM that moved, or a flap). Ports only.
	MACMoves uint64
	Drops    map[string]uint64
	// Control is the number of control frames (link-local, LLDP, ECP)
	// received and handed to Config.Control, or dropped as
	// control_unhandled / control_overrun. Uplink only.
	Control uint64
	// Backend holds the backend-specific counters of the queues behind a
	// port (its own queue and its transmit queue on the uplink) or behind
	// the uplink (receive workers and the control-plane queue), summed by
	// name: what the queues report through backend.CustomStatser, plus
	// what queues closed before reported last (a port keeps its totals
	// across detach and attach). nil when no queue reports any.
	Backend map[string]uint64
}

// Snapshot copies the counters.
func (c *Counters) Snapshot() CounterSnapshot {
	return CounterSnapshot{
		RxPackets: c.RxPackets.Load(), RxBytes: c.RxBytes.Load(),
		TxPackets: c.TxPackets.Load(), TxBytes: c.TxBytes.Load(),
		MACMoves: c.MACMoves.Load(), Drops: c.Drops(),
	}
}

// backendCounters returns folded plus the custom counters of qs summed by
// name, in a new map (nil when both are empty): folded holds the final
// values of queues already closed, qs are the live ones (nil entries are
// skipped). Called with Switch.mu held, off the frame path.
func backendCounters(folded map[string]uint64, qs ...backend.Queue) map[string]uint64 {
	var m map[string]uint64
	if len(folded) > 0 {
		m = maps.Clone(folded)
	}
	var buf [16]backend.Stat
	for _, q := range qs {
		if q == nil {
			continue
		}
		for _, st := range backend.CustomStats(q, buf[:0]) {
			if m == nil {
				m = make(map[string]uint64)
			}
			m[st.Name] += st.Value
		}
	}
	return m
}
