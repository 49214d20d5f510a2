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
	idx  int           // the uplink RX queue's number
	stop chan struct{} // closed when the queue is about to close
	done chan struct{} // closed when run returns
	b    *backend.Batch
	out  *fanout
	hdr  vlan.Header
	// per-batch uplink counters, added once per batch
	rxp, rxb, ctl uint64
	batches       uint32 // for workerPriority
}

func newIngressWorker(s *Switch, q backend.Queue, idx int) *ingressWorker {
	return &ingressWorker{s: s, q: q, idx: idx, stop: make(chan struct{}), done: make(chan struct{}), b: backend.NewBatch(s.cfg.Batch), out: newFanout(s.cfg.Batch)}
}

func (w *ingressWorker) run() {
	w.s.workerPriority(&w.batches)
	r := w.s.newReceiver(w.q, w.b, w.polled, w.s.uplinkCPU(w.idx), false)
	defer r.remove()
	for {
		n, stopped, err := r.next(w.stop)
		if stopped {
			return
		}
		if err != nil {
			if errors.Is(err, backend.ErrClosed) {
				return
			}
			// Typically the uplink went away: say so once; the daemon
			// reopens the queues when it comes back.
			if !r.failing {
				w.s.log.Error("uplink receive failed; waiting for the uplink to come back", "uplink", w.s.cfg.Uplink, "err", err)
				r.failing = true
			}
			select {
			case <-w.stop:
				return
			case <-w.s.stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		if n > 0 {
			w.s.workerPriority(&w.batches) // now and then: the thread running us may be new
			w.process(w.s.snap.Load())
		}
		w.q.Release(w.b)
	}
}

// polled is the pipeline a CPU poller runs for the frames in w.b
// (polling).
func (w *ingressWorker) polled() {
	w.s.workerPriority(&w.batches)
	w.process(w.s.snap.Load())
	w.q.Release(w.b)
}

// process forwards the frames of w.b; the Batch is released by the caller.
func (w *ingressWorker) process(snap *snapshot) {
	w.out.begin(snap)
	b := w.b
	up := &w.s.uplink
	w.rxp, w.rxb, w.ctl = 0, 0, 0
	if cs := w.s.upCapture.Load(); cs != nil {
		cs.batch(DirIn, b) // as received: before the tags are popped in place
	}
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

// frame takes one uplink frame through the steps of the uplink -> VM
// pipeline (DESIGN.md, forwarding rules "Uplink -> VM ports"):
//
//	classify   link-local, LLDP and ECP frames go to the control plane (isControl)
//	parse tags the S-tag/C-tag pair that names the VLAN (uplinkTags)
//	resolve    VID -> the ports of that VLAN and its learning domain (resolve)
//	deliver    tags popped; unicast through the FDB to one port (unicast),
//	           broadcast/multicast to the VLAN's ports but the source's (group)
//
// Every frame that goes nowhere is counted under a drop reason.
func (w *ingressWorker) frame(snap *snapshot, b *backend.Batch, i int) {
	up := &w.s.uplink
	f := b.Frame(i)
	if len(f) < vlan.HeaderLen {
		up.Drop(DropMalformed, 1)
		return
	}
	h := &w.hdr
	parsed := vlan.Parse(f, h) == nil
	if isControl(f, h, parsed) {
		w.control(f)
		return
	}
	if !parsed {
		up.Drop(DropMalformed, 1)
		return
	}
	svid, ctag, ok := uplinkTags(h)
	var d ingressDest
	if !ok || !d.resolve(snap, svid, ctag) {
		up.Drop(DropUnknownVLAN, 1)
		return
	}
	u := popTags(b, i, h.NTags)
	w.out.input(u, d.ctag.TCI, false)
	if u[0]&1 == 0 {
		w.unicast(snap, u, &d)
		return
	}
	w.group(snap, u, &d)
}

// isControl reports a frame for the control plane: to an IEEE 802.1
// link-local group address (01:80:c2:00:00:0x), or LLDP or ECP by its
// ethertype, the outer one or (parsed: h holds its tags) the one behind
// its tags.
func isControl(f []byte, h *vlan.Header, parsed bool) bool {
	return isLinkLocal(f) || isControlType(etherTypeAt(f)) || parsed && isControlType(h.EtherType)
}

func isControlType(et uint16) bool { return et == EtherTypeLLDP || et == EtherTypeECP }

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

// ingressDest is where an uplink frame belongs: its S-channel (0: none),
// C-tag and C-VID, the learning domain of the pair and the ports of the
// C-VID.
type ingressDest struct {
	svid, vid, dom uint16
	ctag           vlan.Tag
	ports          []*portView
}

// uplinkTags picks the tags that name an uplink frame's VLAN: a lone C-tag,
// or an S-tag with a C-tag inside (an S-channel). Untagged frames, a lone
// S-tag and a C-tag outside an S-tag are not ours.
func uplinkTags(h *vlan.Header) (svid uint16, ctag vlan.Tag, ok bool) {
	switch {
	case h.NTags == 2:
		if h.Tags[0].TPID == vlan.TPIDCTag || h.Tags[1].TPID != vlan.TPIDCTag {
			return 0, vlan.Tag{}, false // C-tag outside
		}
		return h.Tags[0].VID(), h.Tags[1], true
	case h.NTags == 1 && h.Tags[0].TPID == vlan.TPIDCTag:
		return 0, h.Tags[0], true
	}
	return 0, vlan.Tag{}, false
}

// resolve fills d for a frame of S-channel svid (0: none) and C-tag ctag
// from the snapshot's VID table and learning domains; false when no port
// uses the C-VID. It is just small enough for the compiler to inline into
// frame (go build -gcflags=-m): keep it that way, the benchmarks notice.
func (d *ingressDest) resolve(snap *snapshot, svid uint16, ctag vlan.Tag) bool {
	vid := ctag.VID()
	d.ports = snap.byVID[vid]
	if len(d.ports) == 0 {
		return false
	}
	d.svid, d.vid, d.ctag, d.dom = svid, vid, ctag, snap.dom.domain(svid, vid)
	return true
}

// popTags strips frame i's n tags in place (the MAC addresses move 4n
// bytes toward the payload) and returns the untagged frame: the view every
// port shares (trunk ports share one arena copy with its C-tag).
func popTags(b *backend.Batch, i, n int) []byte {
	buf, off := b.Buf[i], b.Off[i]
	no := off + n*vlan.TagLen
	copy(buf[no:no+vlan.MACsLen], buf[off:off+vlan.MACsLen]) // copy handles the overlap
	l := b.Len[i] - n*vlan.TagLen
	b.Off[i], b.Len[i] = no, l
	return buf[no : no+l]
}

// unicast delivers the untagged frame u to the port that owns its
// destination in d's domain, else to the ports of the VLAN that opted in to
// flooding, else counts unknown_dst.
func (w *ingressWorker) unicast(snap *snapshot, u []byte, d *ingressDest) {
	// The FDB is live, the snapshot per batch: a port added since may own
	// a slot this snapshot does not have yet.
	slot, ok := lookup(snap, w.s.fdb, d.svid, d.vid, d.dom, u[0:6])
	if ok && slot >= 0 && slot < len(snap.slots) {
		v := snap.slots[slot]
		if v != nil && v.cfg.SVID == d.svid && v.cfg.HasVID(d.vid) {
			if !w.out.to(v, d.vid) {
				v.p.ctr.Drop(DropTxError, 1)
			}
			return
		}
	}
	flooded := false
	for _, v := range d.ports {
		if v.flood && v.cfg.SVID == d.svid {
			if w.out.to(v, d.vid) {
				flooded = true
			} else {
				v.p.ctr.Drop(DropTxError, 1)
			}
		}
	}
	if !flooded {
		w.s.uplink.Drop(DropUnknownDst, 1)
	}
}

// group delivers the untagged broadcast/multicast frame u to every port of
// d's VLAN and S-channel but the one that owns its source (the VEPA
// reflection filter).
func (w *ingressWorker) group(snap *snapshot, u []byte, d *ingressDest) {
	owner := -1
	if slot, ok := lookup(snap, w.s.fdb, d.svid, d.vid, d.dom, u[6:12]); ok {
		owner = slot
	}
	matched := false
	for _, v := range d.ports {
		if v.cfg.SVID != d.svid {
			continue
		}
		matched = true
		if v.slot == owner {
			v.p.ctr.Drop(DropReflection, 1)
			continue
		}
		if !w.out.to(v, d.vid) {
			v.p.ctr.Drop(DropTxError, 1)
		}
	}
	if !matched {
		w.s.uplink.Drop(DropUnknownVLAN, 1) // the VID is used, but not on this S-channel
	}
}

// lookup finds the slot owning mac on C-VID vid of S-channel svid (0:
// none): registered MACs first, then the FDB in learning domain dom
// (domain.go: the VID for ports without an S-channel).
func lookup(snap *snapshot, fdb *FDB, svid, vid, dom uint16, mac []byte) (int, bool) {
	if slot, ok := snap.registered(svid, vid, mac); ok {
		return slot, true
	}
	return fdb.Lookup(MACKey(dom, mac))
}

func etherTypeAt(f []byte) uint16 { return binary.BigEndian.Uint16(f[12:14]) }
