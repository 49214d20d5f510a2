package daemon

import (
	"context"

	"github.com/vswitch/vswitch/pkg/vepa"
	"github.com/vswitch/vswitch/pkg/vlan"
)

// The control plane's receive side. The datapath owns all uplink I/O: its
// uplink workers classify control frames (LLDP, ECP, 01:80:c2:00:00:0x) and
// call datapath.Config.Control on their own thread, the hot path (SCHED_RR
// by default). That call must not block, allocate or take d.mu, while the
// stations' Handle methods parse, allocate, lock, and may call back into the
// daemon (relayChanged takes d.mu and reconfigures the switch). So the two
// are decoupled by a bounded hand-off:
//
//	uplink worker (hot path)              control goroutine (runEVB)
//	  take(f): buffer from free, or        for c := range full:
//	           false (control_overrun)       controlFrame(c): LLDP -> EVB station
//	           copy f into it                                 ECP  -> VDP station
//	           queue it on full              buffer back to free
//
// A fixed pool of ctlBuffers preallocated buffers circulates between the
// two channels; nothing is allocated per frame. Both channels can hold
// every buffer, so the sends never block: a burst the control plane cannot
// absorb costs free buffers, and once none is left take refuses the frame
// and the datapath counts it as control_overrun (a drop, not a stall).
// Frames longer than ctlFrameMax, which no 802.1 control PDU is, are
// refused the same way.

const (
	// ctlBuffers is the hand-off's capacity: more than a few seconds of
	// any legitimate LLDP/ECP exchange.
	ctlBuffers = 64
	// ctlFrameMax is the largest control frame taken (an LLDPDU or ECPDU
	// fits a 1500-byte payload; room for two tags and more).
	ctlFrameMax = 2048
)

// ctlBuf is one buffer of the pool.
type ctlBuf struct {
	n int
	b [ctlFrameMax]byte
}

// controlQueue is the bounded hand-off from the uplink workers to the
// control goroutine. take may be called from any number of goroutines at
// once, run from one.
type controlQueue struct {
	free chan *ctlBuf // buffers take may fill
	full chan *ctlBuf // filled buffers, oldest first, for run
}

func newControlQueue() *controlQueue {
	q := &controlQueue{free: make(chan *ctlBuf, ctlBuffers), full: make(chan *ctlBuf, ctlBuffers)}
	pool := make([]ctlBuf, ctlBuffers)
	for i := range pool {
		q.free <- &pool[i]
	}
	return q
}

// take is the datapath's Config.Control: it copies f into a free buffer and
// queues it for run. It never blocks and allocates nothing; it reports
// false, and keeps nothing, when no buffer is free or f is too long.
func (q *controlQueue) take(f []byte) bool {
	if len(f) > ctlFrameMax {
		return false
	}
	var c *ctlBuf
	select {
	case c = <-q.free:
	default:
		return false
	}
	c.n = copy(c.b[:], f)
	q.full <- c // never blocks: full has room for every buffer
	return true
}

// run hands every queued frame to handle, in the order they were taken,
// until ctx ends. The frame is valid during the call only.
func (q *controlQueue) run(ctx context.Context, handle func(frame []byte)) {
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-q.full:
			handle(c.b[:c.n])
			q.free <- c // never blocks: free has room for every buffer
		}
	}
}

// controlFrame demultiplexes a control frame the datapath received on the
// uplink: LLDP to the EVB station, ECP to the VDP station (when they run),
// by the ethertype behind its tags. The frame is handed over as it was on
// the wire, tags included: both backends give the datapath the tags the
// kernel or the driver took out of the bytes (pkg/afpacket rebuilds them
// from the ring's VLAN fields, pkg/afxdp's program from the driver's
// metadata), and the stations refuse and count tagged LLDPDUs and ECPDUs
// (the adjacent bridge's agents talk untagged; see vepa.Station.Handle).
// Other control frames (STP BPDUs, LACP, ...) are counted by the datapath
// and otherwise ignored: nothing here speaks them. It runs on the control
// goroutine.
func (d *Daemon) controlFrame(f []byte) {
	var h vlan.Header
	if vlan.Parse(f, &h) != nil {
		return
	}
	switch h.EtherType {
	case vepa.EtherTypeLLDP:
		if len(f) >= 6 && [6]byte(f[:6]) == vepa.NearestNonTPMRBridge {
			if st := d.cdcp.Load(); st != nil {
				st.Handle(f) // the S-VLAN components' agent: CDCP
				return
			}
			// No CDCP agent (--cdcp off): the EVB station counts it as
			// another agent's LLDPDU (received, ignored).
		}
		if st := d.evb.Load(); st != nil {
			st.Handle(f)
		}
	case vepa.EtherTypeECP:
		if st := d.vdp.Load(); st != nil {
			st.Handle(f)
		}
	}
}

// controlReject is a count of control frames the stations refused: one
// series of vswitch_uplink_control_rejected_total (labels protocol and
// reason) and one key of api.UplinkStats.ControlRejected ("lldp_tagged").
type controlReject struct {
	proto, reason string
	n             uint64
}

func (c controlReject) key() string { return c.proto + "_" + c.reason }

// controlRejects counts the control frames the stations refused, by
// protocol and reason (none when the EVB station is off): tagged ones,
// those of another bridge than the peer, and shutdown LLDPDUs of anyone
// but the peer.
func (d *Daemon) controlRejects() []controlReject {
	st := d.evb.Load()
	if st == nil {
		return nil
	}
	r := st.Relay()
	var e vepa.ECPStats
	if v := d.vdp.Load(); v != nil {
		e = v.ECPStats()
	}
	out := []controlReject{
		{"lldp", "tagged", r.Tagged}, {"lldp", "foreign_peer", r.Foreign}, {"lldp", "foreign_shutdown", r.ForeignShutdown},
		{"ecp", "tagged", e.Tagged}, {"ecp", "foreign_peer", e.Foreign},
	}
	if c := d.cdcp.Load(); c != nil {
		cs := c.State()
		out = append(out, controlReject{"cdcp", "tagged", cs.Tagged}, controlReject{"cdcp", "foreign_peer", cs.Foreign})
	}
	return out
}
