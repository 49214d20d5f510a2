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
// uplink: LLDP to the EVB station, ECP to the VDP station (when they run).
// The kernel would have stripped a VLAN tag before a packet socket bound to
// the ethertype saw the frame; the stations get it untagged here too. Other
// control frames (STP BPDUs, LACP, ...) are counted by the datapath and
// otherwise ignored: nothing here speaks them. It runs on the control
// goroutine and may modify f.
func (d *Daemon) controlFrame(f []byte) {
	var h vlan.Header
	if vlan.Parse(f, &h) != nil {
		return
	}
	if h.NTags != 0 {
		off := h.NTags * vlan.TagLen
		copy(f[off:off+vlan.MACsLen], f[:vlan.MACsLen])
		f = f[off:]
	}
	switch h.EtherType {
	case vepa.EtherTypeLLDP:
		if st := d.evb.Load(); st != nil {
			st.Handle(f)
		}
	case vepa.EtherTypeECP:
		if st := d.vdp.Load(); st != nil {
			st.Handle(f)
		}
	}
}
