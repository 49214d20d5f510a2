package datapath

import "github.com/vswitch/vswitch/pkg/vlan"

// fanout collects the frames a worker delivers to local ports (the uplink
// worker's to the VMs, a VEB port worker's to the other VMs) so each port
// gets one Send per flush rather than one per frame.
//
// Its memory is fixed when it is made and depends on the batch size only,
// never on the number of ports: a flood to n ports costs n entries of one
// flat list, not a queue per port. Each entry is a (destination slot,
// frame) pair; the frame is a view into a receive buffer or a copy in the
// arena (for a copy that needs another tag than the shared view, or that
// must outlive the in-place tag push of the VM -> uplink pipeline). flush
// sorts the entries by slot (a radix sort in two passes at most, nothing
// when they came in order), the order of arrival kept within a slot, and
// hands each port its run. When the entries or the arena are full, what is
// pending is flushed early (Send copies, so both are reused at once): a
// flood to many ports takes more Sends per port, never more memory.
// Nothing is allocated per frame.
type fanout struct {
	keys   []uint32 // slot<<keyIndexBits | index into frames, as added
	tmp    []uint32 // the radix sort's other half
	frames [][]byte // the pending frames, in the order added
	out    [][]byte // one port's frames, for its Send
	sorted bool     // keys were added in increasing order (flush need not sort)
	slots  int      // the OR of the pending slots (one radix pass when < radixBuckets)
	count  [radixBuckets]int32
	arena  []byte
	used   int
	snap   *snapshot // of the batch being processed, for early flushes
}

const (
	arenaFrame = 2048 + 2*vlan.TagLen
	// fanoutArenaFrames is the arena's size in largest frames per batch
	// frame: 4 x 64 x 2056 bytes, 514 KiB, at the default batch.
	fanoutArenaFrames = 4
	// ingressEntries and vebEntries are how many deliveries may be pending
	// per batch frame before a flush: 64 for the uplink worker (4096, 128
	// KiB at the default batch: a flood to 64 ports in one flush per batch),
	// 16 for a VEB port's worker (1024, 32 KiB, 16 ports), of which there is
	// one per port.
	ingressEntries = 64
	vebEntries     = 16

	keyIndexBits = 20 // a key's index part: at most 1M entries
	slotBits     = 12 // a key's slot part: MaxPorts
	radixBits    = 6  // bits of the slot sorted per radix pass
	radixBuckets = 1 << radixBits
)

// A key has room for every slot.
var _ [1<<slotBits - MaxPorts]struct{}

// newFanout makes a fanout for batches of batch frames with perFrame
// entries per batch frame.
func newFanout(batch, perFrame int) *fanout {
	n := min(perFrame*batch, 1<<keyIndexBits)
	return &fanout{
		keys:   make([]uint32, 0, n),
		tmp:    make([]uint32, 0, n),
		frames: make([][]byte, 0, n),
		out:    make([][]byte, 0, batch),
		sorted: true,
		arena:  make([]byte, fanoutArenaFrames*batch*arenaFrame),
	}
}

// begin starts a batch of snapshot snap.
func (f *fanout) begin(snap *snapshot) { f.snap = snap }

// full reports that no entry is free until the next flush.
func (f *fanout) full() bool { return len(f.frames) == cap(f.frames) }

// add queues frame for slot; when every entry is taken it first flushes
// what is pending. False (the caller counts a drop) only when it cannot:
// every entry taken before begin gave it a snapshot to flush with.
func (f *fanout) add(slot int, frame []byte) bool {
	if f.full() {
		if f.snap == nil {
			return false
		}
		f.flush(f.snap)
	}
	k := uint32(slot)<<keyIndexBits | uint32(len(f.frames))
	if n := len(f.keys); n > 0 && k < f.keys[n-1] {
		f.sorted = false
	}
	f.slots |= slot
	f.keys = append(f.keys, k)
	f.frames = append(f.frames, frame)
	return true
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

// room returns n free arena bytes with an entry free for them: when the
// arena or the entries are full it first sends what is pending, so the
// add that follows never flushes (which would free the copy's bytes
// before it is sent).
func (f *fanout) room(n int) []byte {
	if (f.used+n > len(f.arena) || f.full()) && f.snap != nil {
		f.flush(f.snap)
	}
	if f.used+n > len(f.arena) || f.full() {
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
		return f.add(v.slot, t)
	}
	return f.add(v.slot, u)
}

// flush sends every port's pending frames, one Send per port, and resets
// the fanout.
func (f *fanout) flush(snap *snapshot) {
	if !f.sorted {
		f.sortKeys()
	}
	for i := 0; i < len(f.keys); {
		slot := int(f.keys[i] >> keyIndexBits)
		out := f.out[:0]
		for ; i < len(f.keys) && int(f.keys[i]>>keyIndexBits) == slot; i++ {
			if len(out) == cap(out) { // more than a batch for one port: cannot happen today, but never grow
				f.send(snap, slot, out)
				clear(out)
				out = out[:0]
			}
			out = append(out, f.frames[f.keys[i]&(1<<keyIndexBits-1)])
		}
		f.send(snap, slot, out)
		clear(out)
	}
	clear(f.frames) // drop the views of receive buffers
	f.frames = f.frames[:0]
	f.keys = f.keys[:0]
	f.sorted = true
	f.slots = 0
	f.used = 0
}

// sortKeys sorts the keys by slot, stably, so each port's frames keep
// their order: a least-significant-digit radix sort of radixBits per
// pass, one pass while every slot is below radixBuckets, two otherwise.
func (f *fanout) sortKeys() {
	for shift := 0; shift < slotBits && f.slots>>shift != 0; shift += radixBits {
		dst := f.tmp[:len(f.keys)]
		f.radixPass(f.keys, dst, keyIndexBits+shift)
		f.keys, f.tmp = dst, f.keys[:0]
	}
}

// radixPass places src's keys in dst by their radixBits at shift, stably.
func (f *fanout) radixPass(src, dst []uint32, shift int) {
	c := &f.count
	clear(c[:])
	for _, k := range src {
		c[k>>shift&(radixBuckets-1)]++
	}
	var sum int32
	for i, n := range c {
		c[i] = sum
		sum += n
	}
	for _, k := range src {
		d := k >> shift & (radixBuckets - 1)
		dst[c[d]] = k
		c[d]++
	}
}

// send hands frames to the port in slot and counts them.
func (f *fanout) send(snap *snapshot, slot int, frames [][]byte) {
	var v *portView
	if slot < len(snap.slots) {
		v = snap.slots[slot]
	}
	if v == nil {
		return // port deleted in between: nothing to count on
	}
	c := &v.p.ctr
	io := v.p.io.Load()
	if io == nil {
		c.Drop(DropPortDown, uint64(len(frames)))
		return
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
}
