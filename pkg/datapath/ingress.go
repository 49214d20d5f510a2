package datapath

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/vswitch/vswitch/pkg/backend"
	"github.com/vswitch/vswitch/pkg/vlan"
)

// ingressWorker runs the uplink -> VM pipeline for one uplink RX queue.
type ingressWorker struct {
	s    *Switch
	q    backend.Queue
	done chan struct{} // closed when run returns
	b    *backend.Batch
	out  *fanout
	hdr  vlan.Header
	// per-batch uplink counters, added once per batch
	rxp, rxb, ctl uint64
}

func newIngressWorker(s *Switch, q backend.Queue) *ingressWorker {
	return &ingressWorker{s: s, q: q, done: make(chan struct{}), b: backend.NewBatch(s.cfg.Batch), out: newFanout(s.cfg.Batch)}
}

func (w *ingressWorker) run() {
	defer w.s.pinWorker()()
	failing := false
	for {
		n, err := w.q.Recv(w.b)
		if err != nil {
			if errors.Is(err, backend.ErrClosed) {
				return
			}
			// Typically the uplink went away: say so once; the daemon
			// reopens the queues when it comes back.
			if !failing {
				w.s.log.Error("uplink receive failed; waiting for the uplink to come back", "uplink", w.s.cfg.Uplink, "err", err)
				failing = true
			}
			select {
			case <-w.s.stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		failing = false
		if n > 0 {
			w.process(w.s.snap.Load())
		}
		w.q.Release(w.b)
	}
}

// process forwards the frames of w.b; the Batch is released by the caller.
func (w *ingressWorker) process(snap *snapshot) {
	w.out.begin(snap)
	b := w.b
	up := &w.s.uplink
	w.rxp, w.rxb, w.ctl = 0, 0, 0
	for i := 0; i < b.N; i++ {
		w.rxp++
		w.rxb += uint64(b.Len[i])
		w.frame(snap, b, i)
	}
	up.RxPackets.Add(w.rxp)
	up.RxBytes.Add(w.rxb)
	if w.ctl != 0 {
		w.s.control.Add(w.ctl)
	}
	w.out.flush(snap)
}

func (w *ingressWorker) frame(snap *snapshot, b *backend.Batch, i int) {
	up := &w.s.uplink
	f := b.Frame(i)
	if len(f) < vlan.HeaderLen {
		up.Drop(DropMalformed, 1)
		return
	}
	h := &w.hdr
	perr := vlan.Parse(f, h)
	if isLinkLocal(f) || etherTypeAt(f) == EtherTypeLLDP || etherTypeAt(f) == EtherTypeECP ||
		(perr == nil && (h.EtherType == EtherTypeLLDP || h.EtherType == EtherTypeECP)) {
		w.control(f)
		return
	}
	if perr != nil {
		up.Drop(DropMalformed, 1)
		return
	}
	var svid uint16
	var ctag vlan.Tag
	switch {
	case h.NTags == 0:
		up.Drop(DropUnknownVLAN, 1)
		return
	case h.NTags == 2:
		if h.Tags[0].TPID == vlan.TPIDCTag || h.Tags[1].TPID != vlan.TPIDCTag {
			up.Drop(DropUnknownVLAN, 1) // C-tag outside: not ours
			return
		}
		svid, ctag = h.Tags[0].VID(), h.Tags[1]
	case h.Tags[0].TPID == vlan.TPIDCTag:
		ctag = h.Tags[0]
	default:
		up.Drop(DropUnknownVLAN, 1) // lone S-tag
		return
	}
	vid := ctag.VID()
	ports := snap.byVID[vid]
	if len(ports) == 0 {
		up.Drop(DropUnknownVLAN, 1)
		return
	}
	// Strip the tags in place: the untagged frame is the shared view; trunk
	// ports get an arena copy with their C-tag.
	off, n := b.Off[i], b.Len[i]
	for t := 0; t < h.NTags; t++ {
		off, n = vlan.PopInPlace(b.Buf[i], off, n)
	}
	b.Off[i], b.Len[i] = off, n
	u := b.Buf[i][off : off+n]
	dst := u[0:6]
	dom := snap.dom.domain(svid, vid)
	if dst[0]&1 == 0 {
		// The FDB is live, the snapshot per batch: a port added since
		// may own a slot this snapshot does not have yet.
		slot, ok := lookup(snap, w.s.fdb, dom, dst)
		if ok && slot >= 0 && slot < len(snap.slots) {
			v := snap.slots[slot]
			if v != nil && v.cfg.SVID == svid && v.cfg.hasVID(vid) {
				if !w.out.addFor(v, u, ctag.TCI, vid) {
					v.p.ctr.Drop(DropTxError, 1)
				}
				return
			}
		}
		// unknown unicast: only to ports that opted in
		flooded := false
		for _, v := range ports {
			if v.flood && v.cfg.SVID == svid {
				if w.out.addFor(v, u, ctag.TCI, vid) {
					flooded = true
				} else {
					v.p.ctr.Drop(DropTxError, 1)
				}
			}
		}
		if !flooded {
			up.Drop(DropUnknownDst, 1)
		}
		return
	}
	// broadcast / multicast: every port of the VID but the source's owner
	// (VEPA reflection filter).
	owner := -1
	if slot, ok := lookup(snap, w.s.fdb, dom, u[6:12]); ok {
		owner = slot
	}
	matched := false
	for _, v := range ports {
		if v.cfg.SVID != svid {
			continue
		}
		matched = true
		if v.slot == owner {
			v.p.ctr.Drop(DropReflection, 1)
			continue
		}
		if !w.out.addFor(v, u, ctag.TCI, vid) {
			v.p.ctr.Drop(DropTxError, 1)
		}
	}
	if !matched {
		up.Drop(DropUnknownVLAN, 1) // the VID is used, but not on this S-channel
	}
}

// control hands a control frame to Config.Control and counts it; without
// a handler, or when the handler cannot take it, it is a drop.
func (w *ingressWorker) control(f []byte) {
	w.ctl++
	h := w.s.cfg.Control
	switch {
	case h == nil:
		w.s.uplink.Drop(DropControl, 1)
	case !h(f):
		w.s.uplink.Drop(DropControlOverrun, 1)
	}
}

// lookup finds the slot owning (dom, mac): registered MACs first, then the
// FDB. dom is the learning domain (domain.go), the VID for ports without an
// S-channel.
func lookup(snap *snapshot, fdb *FDB, dom uint16, mac []byte) (int, bool) {
	k := MACKey(dom, mac)
	if len(snap.static) != 0 {
		if slot, ok := snap.static[k]; ok {
			return slot, true
		}
	}
	return fdb.Lookup(k)
}

func etherTypeAt(f []byte) uint16 { return binary.BigEndian.Uint16(f[12:14]) }
