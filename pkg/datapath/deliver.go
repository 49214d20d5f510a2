package datapath

import "github.com/vswitch/vswitch/pkg/vlan"

// fanout collects, for one batch, the frames bound for each local port so
// each port gets one Send per batch. Frames are views into receive buffers
// or into a per-worker arena (for copies that need a different tag than the
// shared view); nothing is allocated per frame.
type fanout struct {
	pend    [][][]byte // by slot
	touched []int
	arena   []byte
	used    int
	batch   int
	snap    *snapshot // of the batch being processed, for early flushes
}

const arenaFrame = 2048 + 2*vlan.TagLen

func newFanout(batch int) *fanout {
	return &fanout{batch: batch, arena: make([]byte, batch*4*arenaFrame), touched: make([]int, 0, 64)}
}

// begin starts a batch: it makes room for the snapshot's slots (allocating
// only on configuration change) and remembers the snapshot.
func (f *fanout) begin(snap *snapshot) {
	f.snap = snap
	f.grow(len(snap.slots))
}

// grow makes room for n slots.
func (f *fanout) grow(n int) {
	if n <= len(f.pend) {
		return
	}
	np := make([][][]byte, n)
	copy(np, f.pend)
	f.pend = np
}

func (f *fanout) add(slot int, frame []byte) {
	q := f.pend[slot]
	if q == nil {
		q = make([][]byte, 0, f.batch) // once per slot per worker lifetime
	}
	if len(q) == 0 {
		f.touched = append(f.touched, slot)
	}
	f.pend[slot] = append(q, frame)
}

// tagged returns a copy of the untagged frame u with a C-tag inserted, in the
// arena; nil when the arena is full (the caller counts a drop).
func (f *fanout) tagged(u []byte, tci uint16) []byte {
	dst := f.room(len(u) + vlan.TagLen)
	if dst == nil {
		return nil
	}
	n := vlan.PushTo(dst, u, vlan.Tag{TPID: vlan.TPIDCTag, TCI: tci})
	f.used += n
	return dst[:n]
}

// copyOf returns a copy of u in the arena (nil if it cannot fit at all).
func (f *fanout) copyOf(u []byte) []byte {
	dst := f.room(len(u))
	if dst == nil {
		return nil
	}
	copy(dst, u)
	f.used += len(u)
	return dst
}

// room returns n free arena bytes; when the arena is full it first sends
// what is pending (Send copies, so the arena can be reused at once).
func (f *fanout) room(n int) []byte {
	if f.used+n > len(f.arena) && f.snap != nil {
		f.flush(f.snap)
	}
	if f.used+n > len(f.arena) {
		return nil
	}
	return f.arena[f.used : f.used+n]
}

// addFor queues the untagged frame u of VLAN vid (tci carries PCP) for port
// v: untagged for access ports and a trunk's native VLAN, tagged otherwise.
func (f *fanout) addFor(v *portView, u []byte, tci uint16, vid uint16) bool {
	if v.cfg.IsTrunk() && vid != v.cfg.NativeVLAN {
		t := f.tagged(u, tci)
		if t == nil {
			return false
		}
		f.add(v.slot, t)
		return true
	}
	f.add(v.slot, u)
	return true
}

// flush sends every port's pending frames and resets the fanout.
func (f *fanout) flush(snap *snapshot) {
	for _, slot := range f.touched {
		frames := f.pend[slot]
		f.pend[slot] = frames[:0]
		var v *portView
		if slot < len(snap.slots) {
			v = snap.slots[slot]
		}
		if v == nil {
			continue // port deleted in between: nothing to count on
		}
		c := &v.p.ctr
		io := v.p.io.Load()
		if io == nil {
			c.Drop(DropPortDown, uint64(len(frames)))
			continue
		}
		n, _ := io.tap.Send(frames)
		var bytes uint64
		for _, fr := range frames[:n] {
			bytes += uint64(len(fr))
		}
		c.TxPackets.Add(uint64(n))
		c.TxBytes.Add(bytes)
		if n < len(frames) {
			c.Drop(DropTxError, uint64(len(frames)-n))
		}
		clear(frames)
	}
	f.touched = f.touched[:0]
	f.used = 0
}
