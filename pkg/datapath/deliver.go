package datapath

import "github.com/vswitch/vswitch/pkg/vlan"

// fanout collects the frames a worker delivers to local ports (the uplink
// worker's to the VMs, a VEB port worker's to the other VMs) so each port
// gets one Send per flush rather than one per frame.
//
// Its memory is fixed when it is made: it depends on the batch size and
// on MaxPorts, never on how many ports there are or how many a frame
// floods to. The pending frames are one flat list shared by all ports,
// each a view into a receive buffer or a copy in the arena (for a copy
// that needs another tag than the shared view, or that must outlive the
// in-place tag push of the VM -> uplink pipeline), chained per destination
// slot in the order they came; a table of two 16-bit indexes per slot
// holds each chain's ends. flush walks the chains of the slots it touched
// and hands each port its frames in one Send. When the list or the arena
// is full, what is pending is flushed early (Send copies, so both are
// reused at once): a flood to many ports takes more Sends per port, never
// more memory. Nothing is allocated per frame.
type fanout struct {
	frames  [][]byte         // the pending frames, in the order added
	next    []uint16         // next[i]: 1 + the index of the frame after frames[i] for its slot, 0: none
	chains  *[MaxPorts]chain // each slot's pending frames
	touched []uint16         // the slots with frames pending, in the order first added
	out     [][]byte         // one port's frames, for its Send
	arena   []byte
	used    int
	snap    *snapshot // of the batch being processed, for early flushes
}

// chain is a slot's pending frames: 1 + the index of its first and last
// in fanout.frames, 0 when it has none.
type chain struct{ head, tail uint16 }

const (
	arenaFrame = 2048 + 2*vlan.TagLen
	// fanoutArenaFrames is the arena's size in largest frames per batch
	// frame: 4 x 64 x 2056 bytes, 514 KiB, at the default batch.
	fanoutArenaFrames = 4
	// ingressEntries and vebEntries are how many deliveries may be pending
	// per batch frame before a flush: 64 for the uplink worker (4096 at
	// the default batch, 104 KiB: a flood to 64 ports in one flush per
	// batch), 16 for a VEB port's worker (1024, 26 KiB: 16 ports), of which
	// there is one per port.
	ingressEntries = 64
	vebEntries     = 16
	// maxEntries is what a chain's 16-bit indexes reach.
	maxEntries = 1<<16 - 1
)

// newFanout makes a fanout for batches of batch frames with perFrame
// pending deliveries per batch frame.
func newFanout(batch, perFrame int) *fanout {
	n := min(perFrame*batch, maxEntries)
	return &fanout{
		frames:  make([][]byte, 0, n),
		next:    make([]uint16, 0, n),
		chains:  new([MaxPorts]chain),
		touched: make([]uint16, 0, min(n, MaxPorts)),
		out:     make([][]byte, 0, batch),
		arena:   make([]byte, fanoutArenaFrames*batch*arenaFrame),
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
	i := uint16(len(f.frames)) + 1
	f.frames = append(f.frames, frame)
	f.next = append(f.next, 0)
	c := &f.chains[slot]
	if c.head == 0 {
		c.head = i
		f.touched = append(f.touched, uint16(slot)) // at most one per entry and per slot: never grows
	} else {
		f.next[c.tail-1] = i
	}
	c.tail = i
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

// flush sends every port's pending frames, one Send per port in the
// order the ports were first given a frame, and resets the fanout.
func (f *fanout) flush(snap *snapshot) {
	for _, slot := range f.touched {
		c := &f.chains[slot]
		out := f.out[:0]
		for i := c.head; i != 0; i = f.next[i-1] {
			if len(out) == cap(out) { // more than a batch for one port: not made by the pipelines, but never grow
				f.send(snap, int(slot), out)
				clear(out)
				out = out[:0]
			}
			out = append(out, f.frames[i-1])
		}
		*c = chain{}
		f.send(snap, int(slot), out)
		clear(out)
	}
	f.touched = f.touched[:0]
	clear(f.frames) // drop the views of receive buffers
	f.frames = f.frames[:0]
	f.next = f.next[:0]
	f.used = 0
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
