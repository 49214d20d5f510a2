package datapath

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/vswitch/vswitch/pkg/backend"
	"github.com/vswitch/vswitch/pkg/vlan"
	"golang.org/x/sys/unix"
)

// egressWorker runs the VM -> uplink pipeline of one port: it owns the
// port's tap queue for receiving and sends on the port's own uplink queue.
type egressWorker struct {
	s      *Switch
	p      *port
	io     *portIO
	b      *backend.Batch
	up     [][]byte // frames for the uplink, this batch
	local  *fanout  // VEB: frames for other local ports (made on the first VEB batch)
	hdr    vlan.Header
	maxLen int
	now    uint32 // FDB clock, read once per batch
	moves  moveBucket
	// vmSeen: a frame of this batch came from the VM's own address,
	// though dropped as vid_unassigned (for Config.FirstFrame).
	vmSeen bool
	// batches counts batches for workerPriority.
	batches uint32
}

func newEgressWorker(s *Switch, p *port, io *portIO) *egressWorker {
	return &egressWorker{
		s: s, p: p, io: io,
		b:      backend.NewBatch(s.cfg.Batch),
		up:     make([][]byte, 0, s.cfg.Batch),
		maxLen: s.cfg.MTU + 18,
		moves:  moveBucket{tokens: macMoveBurst},
	}
}

func (w *egressWorker) run() {
	w.s.workerPriority(&w.batches)
	r := w.s.newReceiver(w.io.tap, w.b, w.polled, w.s.portCPU(w.p.slot), true)
	defer r.remove()
	for {
		n, stopped, err := r.next(w.io.stop)
		if stopped {
			return
		}
		if err != nil {
			if errors.Is(err, backend.ErrClosed) {
				return
			}
			// The interface went down (a VM reboot) or away: keep the
			// queue; it receives again once the link is back, and a
			// deleted interface is detached by the daemon (Close).
			if !r.failing {
				// A link going down or away is what every VM stop and
				// reboot does: info, not a warning an operator must
				// chase. Anything else is a warning.
				lv := slog.LevelWarn
				if errors.Is(err, unix.ENETDOWN) || errors.Is(err, unix.ENXIO) || errors.Is(err, unix.ENODEV) {
					lv = slog.LevelInfo
				}
				w.s.log.Log(context.Background(), lv, "port receive failed; waiting for the interface to come back", "port", w.p.name, "err", err)
				r.failing = true
			}
			select {
			case <-w.io.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		if n > 0 {
			w.s.workerPriority(&w.batches) // now and then: the thread running us may be new
			w.process(w.s.snap.Load(), w.p.view.Load())
		}
		w.io.tap.Release(w.b)
	}
}

// polled is the pipeline a CPU poller runs for the frames in w.b
// (polling).
func (w *egressWorker) polled() {
	w.s.workerPriority(&w.batches)
	w.process(w.s.snap.Load(), w.p.view.Load())
	w.io.tap.Release(w.b)
}

func (w *egressWorker) process(snap *snapshot, v *portView) {
	c := &w.p.ctr
	b := w.b
	var rxp, rxb uint64
	// The fanout (an arena of 2 batches of frames, 257 KiB, and 4096
	// pending deliveries with their index, 40 KiB, whatever the number of
	// ports) is made on the port's first VEB batch: a VEPA port sends
	// everything to the uplink and never needs it.
	veb := snap.mode == ModeVEB
	if veb {
		if w.local == nil {
			w.local = newFanout(w.s.cfg.Batch)
		}
		w.local.begin(snap)
	}
	w.now = w.s.fdb.now()
	if cs := w.p.capture.Load(); cs != nil {
		cs.batch(DirIn, b) // as the VM sent them: before the checks and the tag push
	}
	passed := false
	w.vmSeen = false
	for i := 0; i < b.N; i++ {
		rxp++
		rxb += uint64(b.Len[i])
		if r, ok := w.frame(snap, v, b, i); !ok {
			c.Drop(r, 1)
		} else {
			passed = true
		}
	}
	c.RxPackets.Add(rxp)
	c.RxBytes.Add(rxb)
	if (passed || w.vmSeen) && w.p.watch.Load() && w.p.watch.CompareAndSwap(true, false) && w.s.cfg.FirstFrame != nil {
		w.s.cfg.FirstFrame(w.p.name)
	}
	if len(w.up) > 0 {
		n, _ := w.io.up.Send(w.up)
		var bytes uint64
		for _, f := range w.up[:n] {
			bytes += uint64(len(f))
		}
		up := &w.s.uplink
		up.TxPackets.Add(uint64(n))
		up.TxBytes.Add(bytes)
		if n < len(w.up) {
			c.Drop(DropTxError, uint64(len(w.up)-n))
		}
		if cs := w.s.upCapture.Load(); cs != nil {
			cs.frames(DirOut, w.up[:n]) // with our tags
		}
		clear(w.up)
		w.up = w.up[:0]
	}
	if veb {
		w.local.flush(snap)
	}
}

// frame handles frame i; it returns the drop reason when the frame is dropped.
func (w *egressWorker) frame(snap *snapshot, v *portView, b *backend.Batch, i int) (Reason, bool) {
	f := b.Frame(i)
	if len(f) < vlan.HeaderLen || len(f) > w.maxLen {
		return DropMalformed, false
	}
	h := &w.hdr
	if err := vlan.Parse(f, h); err != nil {
		return DropMalformed, false
	}
	if isLinkLocal(f) || h.EtherType == EtherTypeLLDP || h.EtherType == EtherTypeECP {
		return DropLinkLocal, false
	}
	cfg := &v.cfg
	var vid uint16
	tci := v.ctag.TCI
	off, n := b.Off[i], b.Len[i]
	if !cfg.IsTrunk() {
		if cfg.VLAN == 0 {
			// Waiting for the bridge's VID (portcfg.Config.Waiting). A
			// frame from the VM's own address still says that the VM runs
			// here: an incoming migration is associated then, and the
			// bridge may assign the VLAN only to the association.
			if src := f[6:12]; src[0]&1 == 0 && !isZeroMAC(src) && (len(v.macs) == 0 || hasMAC(v.macs, src)) {
				w.vmSeen = true
			}
			return DropVIDUnassigned, false
		}
		if h.NTags != 0 {
			return DropTaggedOnAccess, false
		}
		vid = cfg.VLAN
	} else {
		switch {
		case h.NTags == 0 && cfg.NativeVLAN != 0:
			vid = cfg.NativeVLAN
			tci = vlan.MakeTCI(cfg.PCP, false, vid)
		case h.NTags == 1 && h.Tags[0].TPID == vlan.TPIDCTag && cfg.HasVID(h.Tags[0].VID()): // native may come tagged too
			vid = h.Tags[0].VID()
			tci = h.Tags[0].TCI
			off, n = vlan.PopInPlace(b.Buf[i], off, n) // normalise to untagged
		default:
			return DropVLANNotAllowed, false
		}
	}
	src := b.Buf[i][off+6 : off+12] // after a trunk pop the addresses moved
	if src[0]&1 != 0 || isZeroMAC(src) {
		return DropBadSrc, false
	}
	dom := snap.dom.domain(cfg.SVID, vid)
	if len(v.macs) != 0 {
		// Registered MACs are indexed, never learned.
		if !hasMAC(v.macs, src) {
			return DropSpoofedSrc, false
		}
	} else if dom != noDomain { // noDomain: a config change this snapshot predates
		if r, ok := w.learn(snap, v, vid, dom, src); !ok {
			return r, false
		}
	}
	u := b.Buf[i][off : off+n]
	toUplink := true
	if snap.mode == ModeVEB {
		toUplink = w.switchLocal(snap, v, u, tci, vid, dom)
	}
	if toUplink {
		off, n = vlan.PushInPlace(b.Buf[i], off, n, vlan.Tag{TPID: vlan.TPIDCTag, TCI: tci})
		if cfg.SVID != 0 {
			off, n = vlan.PushInPlace(b.Buf[i], off, n, v.stag)
		}
		w.up = append(w.up, b.Buf[i][off:off+n])
	}
	b.Off[i], b.Len[i] = off, n
	return 0, true
}

// switchLocal delivers in VEB mode: known local unicast goes only to its
// port; broadcast/multicast goes to the other local ports of the VID and to
// the uplink. It reports whether the frame must also go to the uplink.
// The local ports share one copy of u (two with a trunk port that wants it
// tagged), made before the in-place tag push, so they see u as is.
func (w *egressWorker) switchLocal(snap *snapshot, v *portView, u []byte, tci, vid, dom uint16) bool {
	dst := u[0:6]
	f := w.local
	if dst[0]&1 == 0 {
		slot, ok := lookup(snap, w.s.fdb, v.cfg.SVID, vid, dom, dst)
		if !ok || slot == v.slot || slot >= len(snap.slots) {
			return true
		}
		d := snap.slots[slot]
		if d == nil || d.cfg.SVID != v.cfg.SVID || !d.cfg.HasVID(vid) {
			return true
		}
		f.input(u, tci, true)
		if !f.to(d, vid) {
			d.p.ctr.Drop(DropTxError, 1)
		}
		return false
	}
	f.input(u, tci, true)
	for _, d := range snap.byVID[vid] {
		if d.slot != v.slot && d.cfg.SVID == v.cfg.SVID && !f.to(d, vid) {
			d.p.ctr.Drop(DropTxError, 1)
		}
	}
	return true
}

// hasMAC reports whether src is among macs (sorted MACKey(0, mac)s):
// a binary search, so a port with the most MACs a port may register costs
// eight comparisons a frame.
func hasMAC(macs []uint64, src []byte) bool {
	k := MACKey(0, src)
	lo, hi := 0, len(macs)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if macs[m] < k {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo < len(macs) && macs[lo] == k
}
