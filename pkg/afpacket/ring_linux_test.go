//go:build linux

package afpacket

import (
	"bytes"
	"encoding/binary"
	"testing"
	"unsafe"

	"github.com/vswitch/vswitch/pkg/backend"
	"golang.org/x/sys/unix"
)

func TestRebuildTag(t *testing.T) {
	// 4 bytes of headroom, then dst, src, ethertype, payload.
	frame := []byte{0xee, 0xee, 0xee, 0xee,
		1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x08, 0x00, 0x45}
	rebuildTag(frame, 4, 0x88a8, 0xa064)
	want := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x88, 0xa8, 0xa0, 0x64, 0x08, 0x00, 0x45}
	if !bytes.Equal(frame, want) {
		t.Fatalf("got % x\nwant % x", frame, want)
	}
}

// TestTpacket2Layout pins the tpacket2_hdr offsets the ring walk uses to
// x/sys/unix's Tpacket2Hdr (generated from the kernel headers), and the
// slot layout to tpacket_rcv's arithmetic.
func TestTpacket2Layout(t *testing.T) {
	var h unix.Tpacket2Hdr
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"tp_status", tp2Status, unsafe.Offsetof(h.Status)},
		{"tp_len", tp2Len, unsafe.Offsetof(h.Len)},
		{"tp_snaplen", tp2Snaplen, unsafe.Offsetof(h.Snaplen)},
		{"tp_mac", tp2Mac, unsafe.Offsetof(h.Mac)},
		{"tp_net", tp2Net, unsafe.Offsetof(h.Net)},
		{"tp_sec", tp2Sec, unsafe.Offsetof(h.Sec)},
		{"tp_nsec", tp2Nsec, unsafe.Offsetof(h.Nsec)},
		{"tp_vlan_tci", tp2VlanTCI, unsafe.Offsetof(h.Vlan_tci)},
		{"tp_vlan_tpid", tp2VlanTPID, unsafe.Offsetof(h.Vlan_tpid)},
		{"sizeof", tpacket2HdrAligned, unsafe.Sizeof(h)},
	} {
		if c.got != c.want {
			t.Errorf("%s at %d, unix.Tpacket2Hdr says %d", c.name, c.got, c.want)
		}
	}
	// TPACKET2_HDRLEN = TPACKET_ALIGN(32) + sizeof(sockaddr_ll) = 52;
	// netoff = TPACKET_ALIGN(52 + 16) + reserve (+ vnet); macoff = netoff - 14.
	if slotScratchOff != 52 || slotNetBase != 80 {
		t.Fatalf("scratch at %d, network header base %d; want 52, 80", slotScratchOff, slotNetBase)
	}
	if got := slotMacOff(false); got != 80+ringReserve-14 {
		t.Fatalf("tp_mac %d", got)
	}
	if got := slotMacOff(true); got != 80+ringReserve+vnetHdrLen-14 {
		t.Fatalf("tp_mac with vnet %d", got)
	}
	// Headroom in front of every frame, after the tag rebuild: the frame
	// starts at tp_mac - 4 at worst, the view at the scratch area.
	for _, vnet := range []bool{false, true} {
		if room := slotMacOff(vnet) - rebuiltTagLen - slotScratchOff; room < backend.Headroom {
			t.Fatalf("vnet %v: %d bytes of headroom", vnet, room)
		}
		if sz := ringSlotSize(defaultFrameSize, vnet); sz%tpacketAlign != 0 || sz < slotMacOff(vnet)+defaultFrameSize {
			t.Fatalf("vnet %v: slot size %d", vnet, sz)
		}
	}
	if auxdataLen != 20 {
		t.Fatalf("sizeof(tpacket_auxdata) = %d", auxdataLen)
	}
}

// fakePkt is one frame of a ring built in memory the way tpacket_rcv lays
// out TPACKET_V2 slots (tpacket2_hdr, sockaddr_ll, reserve, [vnet header,]
// frame), so the walk can be tested without root.
type fakePkt struct {
	frame  []byte // as the kernel stores it (outer tag already stripped)
	wire   int    // tp_len; 0 means len(frame)
	status uint32
	tci    uint16
	tpid   uint16
	// with a vnet ring: the virtio_net_hdr in front of the frame
	gsoType uint8
	gsoSize int
	// copied: the frame does not fit its slot; the slot gets its head
	// and TP_STATUS_COPY, the whole frame goes to the fake receive queue
	copied bool
}

// fakeRing is a TPACKET_V2 ring in memory: blocks of perBlock slots of
// frameSize bytes (with a gap at the end of each block, as the kernel
// leaves when the block size is not a multiple of the slot size), and the
// fake receive queue its TP_STATUS_COPY frames are read from.
func fakeRing(blocks, perBlock, frameSize int, vnet bool) (*rxRing, *fakeQueue) {
	g := ringGeometry{blockSize: perBlock*frameSize + 48, blocks: blocks, frameSize: frameSize}
	r := newRingState(make([]byte, g.blockSize*g.blocks), g, vnet)
	q := &fakeQueue{}
	if vnet {
		r.recvCopy = q.recv
	}
	return r, q
}

// fakeQueue stands for the socket's receive queue of TP_STATUS_COPY skbs.
type fakeQueue struct {
	skbs [][]byte // virtio_net_hdr + frame
	aux  []unix.TpacketAuxdata
	// cycle: serve the skbs round and round instead of dequeuing them
	cycle bool
	next  int
	// errs are returned, one per call, before any skb (pending socket
	// errors: recvmsg reports them without dequeuing)
	errs  []error
	reads int // calls
}

func (q *fakeQueue) recv(p, oob []byte) (n, oobn, flags int, err error) {
	q.reads++
	if len(q.errs) > 0 {
		err, q.errs = q.errs[0], q.errs[1:]
		return 0, 0, 0, err
	}
	if len(q.skbs) == 0 {
		return 0, 0, 0, unix.EAGAIN
	}
	var skb []byte
	var aux unix.TpacketAuxdata
	if q.cycle {
		skb, aux = q.skbs[q.next%len(q.skbs)], q.aux[q.next%len(q.skbs)]
		q.next++
	} else {
		skb, aux = q.skbs[0], q.aux[0]
		q.skbs, q.aux = q.skbs[1:], q.aux[1:]
	}
	n = copy(p, skb)
	if n < len(skb) {
		flags |= unix.MSG_TRUNC
	}
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = unix.SOL_PACKET, unix.PACKET_AUXDATA
	h.SetLen(unix.CmsgLen(auxdataLen))
	d := oob[unix.CmsgLen(0):]
	ne := binary.NativeEndian
	ne.PutUint32(d[0:], aux.Status)
	ne.PutUint32(d[4:], aux.Len)
	ne.PutUint32(d[8:], aux.Snaplen)
	ne.PutUint16(d[16:], aux.Vlan_tci)
	ne.PutUint16(d[18:], aux.Vlan_tpid)
	return n, unix.CmsgSpace(auxdataLen), flags, nil
}

// writeSlots writes pkts into consecutive slots from slot first, marking
// them TP_STATUS_USER as tpacket_rcv does last.
func writeSlots(r *rxRing, q *fakeQueue, first int, pkts []fakePkt) {
	ne := binary.NativeEndian
	mac := slotMacOff(r.vnet)
	for i, k := range pkts {
		p := int(r.slots[(first+i)%len(r.slots)])
		slot := r.mem[p : p+r.frameSize]
		clear(slot)
		wire := k.wire
		if wire == 0 {
			wire = len(k.frame)
		}
		snap := len(k.frame)
		status := unix.TP_STATUS_USER | k.status
		if k.copied {
			snap = r.frameSize - mac
			status |= unix.TP_STATUS_COPY
		}
		ne.PutUint32(slot[tp2Len:], uint32(wire))
		ne.PutUint32(slot[tp2Snaplen:], uint32(snap))
		ne.PutUint16(slot[tp2Mac:], uint16(mac))
		ne.PutUint16(slot[tp2Net:], uint16(mac+14))
		ne.PutUint16(slot[tp2VlanTCI:], k.tci)
		ne.PutUint16(slot[tp2VlanTPID:], k.tpid)
		copy(slot[mac:mac+snap], k.frame)
		var vh [vnetHdrLen]byte
		vh[vnetGSOTypeOff] = k.gsoType
		ne.PutUint16(vh[vnetGSOSizeOff:], uint16(k.gsoSize))
		if r.vnet {
			copy(slot[mac-vnetHdrLen:mac], vh[:])
		}
		if k.copied {
			q.skbs = append(q.skbs, append(vh[:], k.frame...))
			q.aux = append(q.aux, unix.TpacketAuxdata{Status: unix.TP_STATUS_USER | k.status,
				Snaplen: uint32(len(k.frame)), Vlan_tci: k.tci, Vlan_tpid: k.tpid})
		}
		ne.PutUint32(slot[tp2Status:], status)
	}
}

// plainSlot is the slot size of a ring without vnet headers for frames of
// the default frame size.
var plainSlot = ringSlotSize(defaultFrameSize, false)

func TestRingWalkAndRelease(t *testing.T) {
	r, q := fakeRing(2, 3, plainSlot, false)
	plain := ethFrame(1, nil, 0x88b5, 46)
	stripped := ethFrame(2, nil, 0x88b5, 46) // kernel view of a tagged frame
	writeSlots(r, q, 0, []fakePkt{
		{frame: plain},
		{frame: stripped, status: unix.TP_STATUS_VLAN_VALID, tci: 5<<13 | 100}, // no TPID: 0x8100
		{frame: stripped, status: unix.TP_STATUS_VLAN_VALID | unix.TP_STATUS_VLAN_TPID_VALID, tpid: 0x88a8},
		{frame: plain[:30], wire: 60}, // truncated: dropped
		{frame: plain},
		{frame: stripped, status: unix.TP_STATUS_VLAN_VALID | unix.TP_STATUS_LOSING, tci: 7},
	})
	want := [][]byte{
		plain,
		append(append(append([]byte{}, stripped[:12]...), 0x81, 0x00, 0xa0, 0x64), stripped[12:]...),
		append(append(append([]byte{}, stripped[:12]...), 0x88, 0xa8, 0x00, 0x00), stripped[12:]...),
		plain,
		append(append(append([]byte{}, stripped[:12]...), 0x81, 0x00, 0x00, 0x07), stripped[12:]...),
	}

	b1, b2 := backend.NewBatch(2), backend.NewBatch(4)
	n, _, dropped := r.fill(b1)
	if n != 2 || dropped != 0 {
		t.Fatalf("fill 1: %d frames, %d dropped", n, dropped)
	}
	n, _, dropped = r.fill(b2)
	if n != 3 || dropped != 1 {
		t.Fatalf("fill 2: %d frames, %d dropped; want 3, 1", n, dropped)
	}
	got := [][]byte{b1.Frame(0), b1.Frame(1), b2.Frame(0), b2.Frame(1), b2.Frame(2)}
	offs := []int{b1.Off[0], b1.Off[1], b2.Off[0], b2.Off[1], b2.Off[2]}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("frame %d:\n got % x\nwant % x", i, got[i], want[i])
		}
		if offs[i] < backend.Headroom {
			t.Errorf("frame %d: Off %d < Headroom", i, offs[i])
		}
	}
	if r.slotStatus(3) != unix.TP_STATUS_KERNEL {
		t.Fatal("the dropped frame's slot was not given back at once")
	}
	for _, s := range []int{0, 1, 2, 4, 5} {
		if r.slotStatus(s)&unix.TP_STATUS_USER == 0 {
			t.Fatalf("slot %d went back to the kernel while its frame is outstanding", s)
		}
	}
	if r.ready() || !r.wrapped() {
		t.Fatalf("ready %v, wrapped %v with every slot walked and held", r.ready(), r.wrapped())
	}
	// Any order: the second batch first.
	r.release(b2)
	b2.Reset()
	for s := range 6 {
		if held := s < 2; (r.slotStatus(s) == unix.TP_STATUS_KERNEL) == held {
			t.Fatalf("after releasing batch 2: slot %d status %#x", s, r.slotStatus(s))
		}
	}
	r.release(b1)
	b1.Reset()
	for s := range 6 {
		if r.slotStatus(s) != unix.TP_STATUS_KERNEL {
			t.Fatalf("slot %d not returned after all frames were released", s)
		}
	}
	if r.outstanding.Load() != 0 {
		t.Fatalf("outstanding = %d", r.outstanding.Load())
	}
	// The walk wrapped around to slot 0, which the kernel fills next.
	if r.cur != 0 || r.ready() || r.wrapped() {
		t.Fatalf("cursor at slot %d (ready %v, wrapped %v), want 0, idle", r.cur, r.ready(), r.wrapped())
	}
	writeSlots(r, q, 0, []fakePkt{{frame: stripped}})
	if n, _, _ := r.fill(b1); n != 1 || !bytes.Equal(b1.Frame(0), stripped) {
		t.Fatalf("after the wrap: %d frames", n)
	}
	r.release(b1)
	b1.Reset()
}

func TestRingOversizeDropped(t *testing.T) {
	r, q := fakeRing(1, 2, plainSlot, false)
	r.maxFrame = 100
	writeSlots(r, q, 0, []fakePkt{
		{frame: ethFrame(1, nil, 0x88b5, 90)},                                            // 104 bytes > 100
		{frame: ethFrame(2, nil, 0x88b5, 82), status: unix.TP_STATUS_VLAN_VALID, tci: 1}, // 96+4
	})
	b := backend.NewBatch(4)
	n, _, dropped := r.fill(b)
	if n != 1 || dropped != 1 || b.Len[0] != 100 {
		t.Fatalf("fill: %d frames (len %d), %d dropped; want 1 (len 100), 1", n, b.Len[0], dropped)
	}
	r.release(b)
	b.Reset()
	if r.slotStatus(0) != unix.TP_STATUS_KERNEL || r.slotStatus(1) != unix.TP_STATUS_KERNEL {
		t.Fatal("slots not returned")
	}
}

// TP_STATUS_COPY slots: the walk reads each one's frame from the receive
// queue (exactly one skb per slot, in slot order), gives the slot back at
// once, rebuilds the tag from PACKET_AUXDATA, segments GSO super-frames
// from the copy (across batches, keeping order) and drops other frames
// too long for a slot.
func TestRingCopySlots(t *testing.T) {
	r, q := fakeRing(2, 4, ringSlotSize(defaultFrameSize, true), true)
	r.initArena(defaultFrameSize, 8)
	c := gsoCase{csumCase: csumCase{tags: []tag{{0x8100, 100}}, proto: ipProtoTCP, payload: 14480}, mss: 1448, flags: 0x18}
	super, _, _ := buildSuper(c, 3)
	superStripped := append(append([]byte(nil), super[:12]...), super[16:]...)
	segs := segmentAll(t, super, vnetGSOTCPv4, c.mss, defaultFrameSize)
	big := ethFrame(9, nil, 0x88b5, 3000)
	udp := gsoCase{csumCase: csumCase{proto: ipProtoUDP, payload: 4000}, mss: 1400}
	ufo, _, _ := buildSuper(udp, 4)
	plain := func(i int) []byte { return ethFrame(i, nil, 0x88b5, 46) }
	writeSlots(r, q, 0, []fakePkt{
		{frame: plain(1)},
		{frame: superStripped, copied: true, gsoType: vnetGSOTCPv4, gsoSize: c.mss,
			status: unix.TP_STATUS_VLAN_VALID | unix.TP_STATUS_CSUMNOTREADY, tci: 100},
		{frame: plain(2)},
		{frame: big, copied: true}, // not GSO: too long, dropped
		{frame: plain(3)},
		{frame: ufo, copied: true, gsoType: vnetGSOUDP, gsoSize: udp.mss}, // UFO: dropped
		{frame: plain(4)},
	})
	want := append(append([][]byte{plain(1)}, segs...), plain(2), plain(3), plain(4))

	var got [][]byte
	dropped := 0
	b := backend.NewBatch(4)
	for i := 0; r.ready(); i++ {
		n, _, d := r.fill(b)
		dropped += d
		if n == 0 {
			t.Fatalf("fill %d: nothing, but ready", i)
		}
		if i == 0 {
			// Slot 1's frame is in the copy buffer: slot back at once,
			// while its segments are still to come; slot 3's skb not
			// read yet (the walk does not pass a pending super-frame).
			if r.slotStatus(1) != unix.TP_STATUS_KERNEL || !r.pending() || len(q.skbs) != 2 {
				t.Fatalf("after fill 1: slot 1 status %#x, pending %v, %d skbs queued", r.slotStatus(1), r.pending(), len(q.skbs))
			}
		}
		for k := 0; k < n; k++ {
			got = append(got, append([]byte(nil), b.Frame(k)...))
			if b.Off[k] < backend.Headroom {
				t.Fatalf("Off %d < Headroom", b.Off[k])
			}
		}
		r.release(b)
		b.Reset()
	}
	if len(got) != len(want) {
		t.Fatalf("%d frames, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("frame %d differs:\n got % x\nwant % x", i, got[i][:min(40, len(got[i]))], want[i][:min(40, len(want[i]))])
		}
	}
	if dropped != 2 || len(q.skbs) != 0 {
		t.Fatalf("%d dropped (want 2), %d skbs left in the receive queue (want 0)", dropped, len(q.skbs))
	}
	if r.gsoFrames.Load() != 1 || r.gsoSegments.Load() != uint64(len(segs)) || r.gsoDropped.Load() != 1 {
		t.Fatalf("gso frames %d segments %d dropped %d", r.gsoFrames.Load(), r.gsoSegments.Load(), r.gsoDropped.Load())
	}
	for s := range len(r.slots) {
		if r.slotStatus(s) != unix.TP_STATUS_KERNEL {
			t.Fatalf("slot %d not given back", s)
		}
	}
	if r.outstanding.Load() != 0 || r.nfree != 8 {
		t.Fatalf("outstanding %d, free arena slots %d", r.outstanding.Load(), r.nfree)
	}
}

// A TP_STATUS_COPY slot whose skb does not match (length differs from
// tp_len) is dropped without stalling the walk, and the queue is
// resynchronised: the skb is consumed, and the later TP_STATUS_COPY slot
// whose skb is missing is dropped without a read.
func TestRingCopyMismatch(t *testing.T) {
	r, q := fakeRing(1, 4, ringSlotSize(defaultFrameSize, true), true)
	r.initArena(defaultFrameSize, 8)
	c := gsoCase{csumCase: csumCase{proto: ipProtoTCP, payload: 5000}, mss: 1448}
	super, _, _ := buildSuper(c, 1)
	writeSlots(r, q, 0, []fakePkt{
		{frame: super, copied: true, gsoType: vnetGSOTCPv4, gsoSize: c.mss},
		{frame: ethFrame(1, nil, 0x88b5, 46)},
		{frame: super, copied: true, gsoType: vnetGSOTCPv4, gsoSize: c.mss},
	})
	q.aux[0].Snaplen-- // not the slot's frame
	q.skbs, q.aux = q.skbs[:1], q.aux[:1]
	b := backend.NewBatch(8)
	n, _, dropped := r.fill(b)
	if n != 1 || dropped != 2 || len(q.skbs) != 0 || r.gsoDropped.Load() != 2 {
		t.Fatalf("%d frames, %d dropped, %d skbs left, gsoDropped %d; want 1, 2, 0, 2", n, dropped, len(q.skbs), r.gsoDropped.Load())
	}
	if r.copyResyncs.Load() != 1 || r.copySkip != 0 {
		t.Fatalf("copyResyncs %d, copySkip %d; want 1, 0", r.copyResyncs.Load(), r.copySkip)
	}
	r.release(b)
	b.Reset()
}

// The receive queue out of step with the ring, every way it can happen,
// and back in step deterministically: the frames of slots written after
// the resync come out whole, in order, and each TP_STATUS_COPY slot reads
// exactly its own skb again.
func TestRingCopyResync(t *testing.T) {
	c := gsoCase{csumCase: csumCase{proto: ipProtoTCP, payload: 5000}, mss: 1448}
	super := func(seed byte, payload int) fakePkt {
		c := c
		c.payload = payload
		f, _, _ := buildSuper(c, seed)
		return fakePkt{frame: f, copied: true, gsoType: vnetGSOTCPv4, gsoSize: c.mss}
	}
	plain := func(i int) fakePkt { return fakePkt{frame: ethFrame(i, nil, 0x88b5, 46)} }
	// run walks the ring until it is idle; it returns the frames (whole
	// super-frames rebuilt from their segments' count) and the drops.
	run := func(t *testing.T, r *rxRing) (frames, segs, dropped int) {
		t.Helper()
		b := backend.NewBatch(64)
		for r.ready() {
			n, _, d := r.fill(b)
			dropped += d
			for i := 0; i < n; i++ {
				if b.Meta[i]&arenaMeta != 0 {
					segs++
				} else {
					frames++
				}
			}
			r.release(b)
			b.Reset()
		}
		return frames, segs, dropped
	}
	segsOf := func(k fakePkt) int { return (len(k.frame) - 54 + c.mss - 1) / c.mss }
	var fences []bool
	newRing := func() (*rxRing, *fakeQueue) {
		r, q := fakeRing(2, 8, ringSlotSize(defaultFrameSize, true), true)
		r.initArena(defaultFrameSize, 64)
		fences = nil
		r.fence = func(stop bool) error { fences = append(fences, stop); return nil }
		return r, q
	}
	// inStep writes one more super-frame and a plain frame and checks
	// both come out whole, without a resync.
	inStep := func(t *testing.T, r *rxRing, q *fakeQueue, at int) {
		t.Helper()
		before := r.copyResyncs.Load()
		s := super(9, 3000)
		writeSlots(r, q, at, []fakePkt{s, plain(50)})
		frames, segs, dropped := run(t, r)
		if frames != 1 || segs != segsOf(s) || dropped != 0 || r.copyResyncs.Load() != before || len(q.skbs) != 0 {
			t.Fatalf("after the resync: %d frames, %d segments (want 1, %d), %d dropped, %d resyncs more, %d skbs left",
				frames, segs, segsOf(s), dropped, r.copyResyncs.Load()-before, len(q.skbs))
		}
	}

	t.Run("socket errors", func(t *testing.T) {
		// More pending errors than the old limit of 3 tries: the skb
		// stays queued while they last, and is this slot's.
		r, q := newRing()
		a, b := super(1, 5000), super(2, 4000)
		writeSlots(r, q, 0, []fakePkt{a, plain(1), b})
		q.errs = []error{unix.ENETDOWN, unix.EINTR, unix.ENETDOWN, unix.ENETDOWN, unix.ENETDOWN}
		frames, segs, dropped := run(t, r)
		if frames != 1 || segs != segsOf(a)+segsOf(b) || dropped != 0 {
			t.Fatalf("%d frames, %d segments, %d dropped; want 1, %d, 0", frames, segs, dropped, segsOf(a)+segsOf(b))
		}
		if r.copyResyncs.Load() != 0 || len(fences) != 0 || r.takeSockErr() != unix.ENETDOWN {
			t.Fatalf("copyResyncs %d, fences %v: want no resync and ENETDOWN kept for wait", r.copyResyncs.Load(), fences)
		}
		inStep(t, r, q, 3)
	})
	t.Run("errors without end", func(t *testing.T) {
		r, q := newRing()
		writeSlots(r, q, 0, []fakePkt{super(1, 5000), plain(1)})
		for range copyReadTries {
			q.errs = append(q.errs, unix.ENETDOWN)
		}
		frames, _, dropped := run(t, r)
		if frames != 1 || dropped != 1 || r.copyResyncs.Load() != 1 || len(fences) != 2 || !fences[0] || fences[1] {
			t.Fatalf("%d frames, %d dropped, copyResyncs %d, fences %v; want 1, 1, 1, [true false]", frames, dropped, r.copyResyncs.Load(), fences)
		}
		inStep(t, r, q, 2)
	})
	t.Run("stale skb at the head", func(t *testing.T) {
		// One skb too many (a read that failed after all, a slot
		// walked past): without the resync every later super-frame
		// would read its predecessor's skb.
		r, q := newRing()
		a, b := super(1, 5000), super(2, 4000)
		writeSlots(r, q, 0, []fakePkt{a, plain(1), b, plain(2)})
		stale := super(7, 2000)
		q.skbs = append([][]byte{append(make([]byte, vnetHdrLen), stale.frame...)}, q.skbs...)
		q.aux = append([]unix.TpacketAuxdata{{Status: unix.TP_STATUS_USER, Snaplen: uint32(len(stale.frame))}}, q.aux...)
		frames, segs, dropped := run(t, r)
		// a reads the stale skb: resync, a dropped; b is dropped unread
		// (its skb went with the queue); the plain frames pass.
		if frames != 2 || segs != 0 || dropped != 2 || r.copyResyncs.Load() != 1 || len(q.skbs) != 0 {
			t.Fatalf("%d frames, %d segments, %d dropped, copyResyncs %d, %d skbs left; want 2, 0, 2, 1, 0",
				frames, segs, dropped, r.copyResyncs.Load(), len(q.skbs))
		}
		if q.reads != 4 { // a's read, then the drain: a, b, EAGAIN; none for b
			t.Fatalf("%d reads of the receive queue, want 4", q.reads)
		}
		inStep(t, r, q, 4)
	})
	t.Run("skb missing", func(t *testing.T) {
		// One skb too few: a's skb is gone, a reads b's.
		r, q := newRing()
		a, b := super(1, 5000), super(2, 4000)
		writeSlots(r, q, 0, []fakePkt{a, b, plain(1)})
		q.skbs, q.aux = q.skbs[1:], q.aux[1:]
		frames, segs, dropped := run(t, r)
		if frames != 1 || segs != 0 || dropped != 2 || r.copyResyncs.Load() != 1 || len(q.skbs) != 0 {
			t.Fatalf("%d frames, %d segments, %d dropped, copyResyncs %d, %d skbs left; want 1, 0, 2, 1, 0",
				frames, segs, dropped, r.copyResyncs.Load(), len(q.skbs))
		}
		inStep(t, r, q, 3)
	})
	t.Run("queue empty", func(t *testing.T) {
		r, q := newRing()
		writeSlots(r, q, 0, []fakePkt{super(1, 5000), plain(1)})
		q.skbs, q.aux = nil, nil
		frames, _, dropped := run(t, r)
		if frames != 1 || dropped != 1 || r.copyResyncs.Load() != 1 {
			t.Fatalf("%d frames, %d dropped, copyResyncs %d; want 1, 1, 1", frames, dropped, r.copyResyncs.Load())
		}
		inStep(t, r, q, 2)
	})
	t.Run("refused after dequeue", func(t *testing.T) {
		// EINVAL: recvmsg took the skb and could not describe it; the
		// queue is still in step, no resync.
		r, q := newRing()
		a, b := super(1, 5000), super(2, 4000)
		writeSlots(r, q, 0, []fakePkt{a, b})
		q.skbs, q.aux = q.skbs[1:], q.aux[1:] // a's skb was dequeued...
		q.errs = []error{unix.EINVAL}         // ...by the failed read
		frames, segs, dropped := run(t, r)
		if frames != 0 || segs != segsOf(b) || dropped != 1 || r.copyResyncs.Load() != 0 {
			t.Fatalf("%d frames, %d segments, %d dropped, copyResyncs %d; want 0, %d, 1, 0", frames, segs, dropped, r.copyResyncs.Load(), segsOf(b))
		}
		inStep(t, r, q, 2)
	})
}

func TestParseAuxdata(t *testing.T) {
	oob := make([]byte, 2*unix.CmsgSpace(auxdataLen))
	// an unrelated control message first
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = unix.SOL_SOCKET, unix.SCM_TIMESTAMP
	h.SetLen(unix.CmsgLen(16))
	first := unix.CmsgSpace(16)
	h = (*unix.Cmsghdr)(unsafe.Pointer(&oob[first]))
	h.Level, h.Type = unix.SOL_PACKET, unix.PACKET_AUXDATA
	h.SetLen(unix.CmsgLen(auxdataLen))
	d := oob[first+unix.CmsgLen(0):]
	binary.NativeEndian.PutUint32(d[0:], unix.TP_STATUS_USER|unix.TP_STATUS_VLAN_VALID)
	binary.NativeEndian.PutUint32(d[8:], 1234)
	binary.NativeEndian.PutUint16(d[16:], 100)
	binary.NativeEndian.PutUint16(d[18:], 0x88a8)
	aux, ok := parseAuxdata(oob[:first+unix.CmsgSpace(auxdataLen)])
	if !ok || aux.Snaplen != 1234 || aux.Vlan_tci != 100 || aux.Vlan_tpid != 0x88a8 || aux.Status&unix.TP_STATUS_VLAN_VALID == 0 {
		t.Fatalf("parseAuxdata = %+v, %v", aux, ok)
	}
	for _, bad := range [][]byte{nil, oob[:first], oob[:first+8]} {
		if _, ok := parseAuxdata(bad); ok {
			t.Fatalf("found auxdata in %d bytes", len(bad))
		}
	}
}

// The ring walk allocates nothing: plain frames, tag rebuild, checksum
// completion, TP_STATUS_COPY reads and segmentation included.
func TestRingFillDoesNotAllocate(t *testing.T) {
	r, q := fakeRing(1, 4, ringSlotSize(defaultFrameSize, true), true)
	r.initArena(defaultFrameSize, 64)
	c := gsoCase{csumCase: csumCase{proto: ipProtoTCP, payload: 14480}, mss: 1448, flags: 0x18}
	super, _, _ := buildSuper(c, 3)
	partial, _, _ := buildPartial(csumCase{proto: ipProtoUDP, payload: 100}, 1)
	writeSlots(r, q, 0, []fakePkt{
		{frame: ethFrame(1, nil, 0x88b5, 46)},
		{frame: super, copied: true, gsoType: vnetGSOTCPv4, gsoSize: c.mss},
		{frame: partial, status: unix.TP_STATUS_VLAN_VALID | unix.TP_STATUS_CSUMNOTREADY, tci: 100},
		{frame: ethFrame(2, nil, 0x88b5, 3000), copied: true},
	})
	q.cycle = true
	status := make([]uint32, len(r.slots))
	for s := range status {
		status[s] = r.slotStatus(s)
	}
	b := backend.NewBatch(64)
	allocs := testing.AllocsPerRun(100, func() {
		for s, st := range status { // the kernel fills the slots again
			binary.NativeEndian.PutUint32(r.mem[r.slots[s]+tp2Status:], st)
		}
		n, _, dropped := r.fill(b)
		if n != 12 || dropped != 1 {
			t.Fatalf("%d frames, %d dropped; want 12, 1", n, dropped)
		}
		r.release(b)
		b.Reset()
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per walk", allocs)
	}
}

// A garbled slot header whose frame starts less than a tag's length into
// the slot's scratch area, with a VLAN tag to rebuild, is dropped, not a
// panic (the kernel never writes one; the ring is shared memory).
func TestRingGarbledMacNoRoomForTag(t *testing.T) {
	r, q := fakeRing(1, 2, plainSlot, false)
	writeSlots(r, q, 0, []fakePkt{
		{frame: ethFrame(1, nil, 0x88b5, 46), status: unix.TP_STATUS_VLAN_VALID, tci: 100},
		{frame: ethFrame(2, nil, 0x88b5, 46)},
	})
	p := int(r.slots[0])
	binary.NativeEndian.PutUint16(r.mem[p+tp2Mac:], uint16(slotScratchOff+2)) // 2 bytes of room
	b := backend.NewBatch(4)
	n, _, dropped := r.fill(b)
	if n != 1 || dropped != 1 {
		t.Fatalf("fill: %d frames, %d dropped; want the good one and one drop", n, dropped)
	}
	r.release(b)
}

// Ring-full episodes are seen at release, counted once per episode
// however many batches it lasts, and again for the next one.
func TestRingFreezes(t *testing.T) {
	r, q := fakeRing(2, 4, plainSlot, false) // 8 slots
	b := backend.NewBatch(4)
	frames := func(first, k int) []fakePkt {
		var p []fakePkt
		for i := range k {
			p = append(p, fakePkt{frame: ethFrame(first+i, nil, 0x88b5, 46)})
		}
		return p
	}
	step := func(what string, kernelWrites func(), want uint64, full bool) {
		t.Helper()
		if n, _, _ := r.fill(b); n == 0 {
			t.Fatalf("%s: fill found nothing", what)
		}
		kernelWrites()
		r.release(b)
		b.Reset()
		if got := r.freezes.Load(); got != want || r.full != full {
			t.Fatalf("%s: freezes %d, full %v; want %d, %v", what, got, r.full, want, full)
		}
	}

	writeSlots(r, q, 0, frames(0, 4))
	step("room left", func() { writeSlots(r, q, 4, frames(4, 3)) }, 0, false)
	// Batch 4..6 out, the kernel fills 7 and 0..3 and waits on 4.
	step("kernel waits on the batch", func() { writeSlots(r, q, 7, frames(7, 5)) }, 1, true)
	// Still full at the next two releases (batches 7..2, then 3..6,
	// the kernel refilling what the one before gave back): the same
	// episode.
	step("sustained 1", func() { writeSlots(r, q, 4, frames(4, 3)) }, 1, true)
	step("sustained 2", func() { writeSlots(r, q, 7, frames(7, 4)) }, 1, true)
	// The reader catches up: the kernel writes nothing while batch 7..2 is out.
	step("caught up", func() {}, 1, false)
	// Drain the rest, with no new frames: no episode.
	for r.ready() {
		step("drain", func() {}, 1, false)
	}
	// A second overload is a second episode.
	writeSlots(r, q, r.cur, frames(20, 4))
	step("second overload", func() { writeSlots(r, q, r.cur, frames(24, 4)) }, 2, true)

	// A caller holding two batches: the walk takes every slot and comes
	// round to the first batch (ErrRingHeld); the kernel waits on it. The
	// slot before it is held by the second batch, walked after it.
	r, q = fakeRing(2, 4, plainSlot, false)
	b0, b1 := backend.NewBatch(4), backend.NewBatch(4)
	writeSlots(r, q, 0, frames(0, 8))
	r.fill(b0)
	r.fill(b1)
	if !r.wrapped() {
		t.Fatal("the walk did not come round to the held batch")
	}
	r.release(b0)
	if r.freezes.Load() != 1 || !r.full {
		t.Fatalf("held batches: freezes %d, full %v; want 1, true", r.freezes.Load(), r.full)
	}
	// Released in walk order, b1 finds the kernel not waiting on it: it
	// waits on (or has filled) b0's slots, which are free now.
	r.release(b1)
	if r.freezes.Load() != 1 || r.full {
		t.Fatalf("second batch: freezes %d, full %v; want 1, false", r.freezes.Load(), r.full)
	}
	// Out of order: b1 released before b0 tells nothing (the kernel waits
	// on b0's slots, the older ones); b0 then shows the ring full.
	b0.Reset()
	b1.Reset()
	writeSlots(r, q, 0, frames(0, 8))
	r.fill(b0)
	r.fill(b1)
	r.release(b1)
	if r.freezes.Load() != 1 || r.full {
		t.Fatalf("out of order, b1 first: freezes %d, full %v; want 1, false", r.freezes.Load(), r.full)
	}
	r.release(b0)
	if r.freezes.Load() != 2 || !r.full {
		t.Fatalf("out of order, b0 then: freezes %d, full %v; want 2, true", r.freezes.Load(), r.full)
	}
}
