package datapath

import "github.com/vswitch/vswitch/pkg/vlan"

// fanout collects the frames a worker delivers to local ports (the uplink
// worker's to the VMs, a VEB port worker's to the other VMs) so each port
// gets one Send per flush rather than one per frame.
//
// Its memory is fixed when it is made: it depends on the batch size and on
// MaxPorts, never on how many ports there are or how many a frame floods
// to. A frame delivered to many ports is held once per form: the untagged
// one (a view of the receive buffer, or a copy in the arena when the caller
// goes on to change the buffer, as the VM -> uplink pipeline does when it
// pushes the tag in place) and, made at the first trunk port that wants it,
// a tagged copy in the arena; every port shares them. Each delivery is four
// bytes, the frame's index and a link to the next delivery for the same
// port, so a port's deliveries form a chain in arrival order; a table of two
// 16-bit indexes per port slot holds each chain's ends. flush walks the
// chains of the ports it touched and hands each port its frames in one
// Send. When the deliveries are all taken, they are sent early (Send
// copies; the frames stay); when the frames or the arena cannot take one
// more input frame, everything is sent first. A flood to many ports takes
// more Sends per port, never more memory. Nothing is allocated per frame.
type fanout struct {
	frames  [][]byte         // the distinct frames pending, at most two per input frame
	dels    []delivery       // the pending deliveries, in the order added
	chains  *[MaxPorts]chain // each port slot's pending deliveries
	touched []uint16         // the slots with deliveries pending, in the order first added
	out     [][]byte         // one port's frames, for its Send
	arena   []byte
	used    int
	snap    *snapshot // of the batch being processed, for early flushes

	// The input frame being delivered (input) and its two forms, as
	// 1 + their index in frames (0: not made yet).
	u          []byte
	tci        uint16
	own        bool
	plain, tag uint16

	// inOrder: every pending delivery is of the frame of its own index
	// (dels[i].frame == i), so one port's deliveries are frames[:len(dels)].
	inOrder bool
}

// delivery is one frame for one port: the frame's index in fanout.frames
// and 1 + the index of the port's next delivery (0: its last so far).
type delivery struct{ frame, next uint16 }

// chain is a slot's pending deliveries: 1 + the index of its first and last
// in fanout.dels, 0 when it has none.
type chain struct{ head, tail uint16 }

const (
	arenaFrame = 2048 + 2*vlan.TagLen
	// fanoutArenaFrames is the arena's size in largest frames per batch
	// frame: both forms of every frame of a batch, 2 x 64 x 2056 bytes,
	// 257 KiB, at the default batch.
	fanoutArenaFrames = 2
	// fanoutDeliveries is how many deliveries may be pending per batch
	// frame before they are sent: 4096 at the default batch (16 KiB), a
	// flood to 65 ports in one flush per batch.
	fanoutDeliveries = 64
	// maxDeliveries is what a chain's 16-bit indexes reach.
	maxDeliveries = 1<<16 - 1
)

func newFanout(batch int) *fanout {
	n := min(fanoutDeliveries*batch, maxDeliveries)
	return &fanout{
		frames:  make([][]byte, 0, 2*batch),
		dels:    make([]delivery, 0, n),
		chains:  new([MaxPorts]chain),
		touched: make([]uint16, 0, min(n, MaxPorts)),
		out:     make([][]byte, 0, batch),
		arena:   make([]byte, fanoutArenaFrames*batch*arenaFrame),
		inOrder: true,
	}
}

// begin starts a batch of snapshot snap.
func (f *fanout) begin(snap *snapshot) { f.snap = snap }

// input starts delivering the untagged frame u of a VLAN whose tag (PCP
// and VID) is tci; own says u changes once the caller is done with it, so
// its deliveries need a copy.
func (f *fanout) input(u []byte, tci uint16, own bool) {
	f.u, f.tci, f.own = u, tci, own
	f.plain, f.tag = 0, 0
}

// to delivers the input frame to port v on VLAN vid: untagged for access
// ports and a trunk's native VLAN, tagged otherwise. False (the caller
// counts a drop) when the form could not be made: a frame too large for
// the arena, or no input since the last flush.
func (f *fanout) to(v *portView, vid uint16) bool {
	tagged := v.cfg.IsTrunk() && vid != v.cfg.NativeVLAN
	id := f.plain
	if tagged {
		id = f.tag
	}
	if id == 0 {
		if id = f.form(tagged); id == 0 {
			return false
		}
	}
	return f.add(v.slot, id-1)
}

// form makes one form of the input frame and returns 1 + its index in
// frames, 0 if it cannot. Before the first, it makes room for both,
// sending everything pending if need be (no delivery of this input can be
// pending yet).
func (f *fanout) form(tagged bool) uint16 {
	if f.plain == 0 && f.tag == 0 {
		need := len(f.u) + vlan.TagLen
		if f.own {
			need += len(f.u)
		}
		if (f.used+need > len(f.arena) || len(f.frames)+2 > cap(f.frames)) && f.snap != nil {
			u, tci, own := f.u, f.tci, f.own
			f.flush(f.snap)
			f.input(u, tci, own)
		}
	}
	if tagged {
		f.tag = f.keep(f.tagged())
		return f.tag
	}
	f.plain = f.keep(f.untagged())
	return f.plain
}

// untagged is the input frame's untagged form: u itself, or its copy.
func (f *fanout) untagged() []byte {
	if !f.own || f.u == nil {
		return f.u
	}
	dst := f.room(len(f.u))
	if dst == nil {
		return nil
	}
	copy(dst, f.u)
	f.used += len(f.u)
	return dst
}

// tagged is a copy of the input frame with its C-tag inserted.
func (f *fanout) tagged() []byte {
	if f.u == nil {
		return nil
	}
	dst := f.room(len(f.u) + vlan.TagLen)
	if dst == nil {
		return nil
	}
	n := vlan.PushTo(dst, f.u, vlan.Tag{TPID: vlan.TPIDCTag, TCI: f.tci})
	f.used += n
	return dst[:n]
}

// room returns n free arena bytes, nil if there are not (form made room
// for both forms of every frame that fits in half the arena).
func (f *fanout) room(n int) []byte {
	if f.used+n > len(f.arena) {
		return nil
	}
	return f.arena[f.used : f.used+n]
}

// keep adds frame to the pending frames and returns 1 + its index, 0 for
// nil or when there is no room (form made room for two).
func (f *fanout) keep(frame []byte) uint16 {
	if frame == nil || len(f.frames) == cap(f.frames) {
		return 0
	}
	f.frames = append(f.frames, frame)
	return uint16(len(f.frames))
}

// add queues the pending frame of index frame for slot; when every
// delivery is taken it first sends the pending ones. False only when it
// cannot: every delivery taken before begin gave it a snapshot to send
// with.
func (f *fanout) add(slot int, frame uint16) bool {
	if len(f.dels) == cap(f.dels) {
		if f.snap == nil {
			return false
		}
		f.send(f.snap)
	}
	i := uint16(len(f.dels)) + 1
	if frame != i-1 {
		f.inOrder = false
	}
	f.dels = append(f.dels, delivery{frame: frame})
	c := &f.chains[slot]
	if c.head == 0 {
		c.head = i
		f.touched = append(f.touched, uint16(slot)) // at most one per delivery and per slot: never grows
	} else {
		f.dels[c.tail-1].next = i
	}
	c.tail = i
	return true
}

// send sends every port's pending deliveries, one Send per port in the
// order the ports were first given a frame, and forgets them; the frames
// and the arena stay (an input frame may have more ports to go to).
func (f *fanout) send(snap *snapshot) {
	if len(f.touched) == 1 && f.inOrder {
		// One port, as with a flow to one VM: its frames are in order.
		slot := f.touched[0]
		f.chains[slot] = chain{}
		f.sendTo(snap, int(slot), f.frames[:len(f.dels)])
		f.touched = f.touched[:0]
		f.dels = f.dels[:0]
		f.inOrder = true
		return
	}
	for _, slot := range f.touched {
		c := &f.chains[slot]
		out := f.out[:0]
		for i := c.head; i != 0; i = f.dels[i-1].next {
			if len(out) == cap(out) { // more than a batch for one port: not made by the pipelines, but never grow
				f.sendTo(snap, int(slot), out)
				clear(out)
				out = out[:0]
			}
			out = append(out, f.frames[f.dels[i-1].frame])
		}
		*c = chain{}
		f.sendTo(snap, int(slot), out)
		clear(out)
	}
	f.touched = f.touched[:0]
	f.dels = f.dels[:0]
	f.inOrder = true
}

// flush sends what is pending and resets the fanout, frames and arena
// too.
func (f *fanout) flush(snap *snapshot) {
	f.send(snap)
	clear(f.frames) // drop the views of receive buffers
	f.frames = f.frames[:0]
	f.used = 0
	f.u, f.plain, f.tag = nil, 0, 0
}

// sendTo hands frames to the port in slot and counts them.
func (f *fanout) sendTo(snap *snapshot, slot int, frames [][]byte) {
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
	if cs := v.p.capture.Load(); cs != nil {
		cs.frames(DirOut, frames[:n])
	}
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
