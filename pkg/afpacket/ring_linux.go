//go:build linux

package afpacket

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/vswitch/vswitch/internal/rxwait"
	"github.com/vswitch/vswitch/pkg/backend"
	"golang.org/x/sys/unix"
)

// Offsets inside struct tpacket2_hdr (include/uapi/linux/if_packet.h), the
// header tpacket_rcv writes at the start of every slot of a TPACKET_V2
// ring. TestTpacket2Layout checks them against unix.Tpacket2Hdr.
const (
	tp2Status   = 0  // u32: TP_STATUS_* (owner bit and frame flags)
	tp2Len      = 4  // u32: skb->len, the frame as the kernel had it
	tp2Snaplen  = 8  // u32: bytes stored in the slot
	tp2Mac      = 12 // u16: MAC header, from the slot start
	tp2Net      = 14 // u16: network header, from the slot start
	tp2Sec      = 16 // u32: timestamp (unused)
	tp2Nsec     = 20 // u32
	tp2VlanTCI  = 24 // u16: the tag the kernel took out of the frame
	tp2VlanTPID = 26 // u16
)

// Slot layout. tpacket_rcv puts the network header of a SOCK_RAW frame at
// TPACKET_ALIGN(tp_hdrlen + max(maclen, 16)) + tp_reserve (+ the
// virtio_net_hdr with PACKET_VNET_HDR), where tp_hdrlen is TPACKET2_HDRLEN
// (the aligned tpacket2_hdr and a sockaddr_ll), and the MAC header maclen
// bytes before it. maclen is ETH_HLEN for Ethernet (the kernel has moved
// the outer tag out of the frame by then).
const (
	tpacket2HdrAligned = (unix.SizeofTpacket2Hdr + tpacketAlign - 1) &^ (tpacketAlign - 1)
	// slotScratchOff is the first byte after the sockaddr_ll: Batch.Buf[i]
	// starts there, everything up to the MAC header is our headroom.
	slotScratchOff = tpacket2HdrAligned + sizeofSockaddrLL
	slotNetBase    = (slotScratchOff + 16 + tpacketAlign - 1) &^ (tpacketAlign - 1)
	ethHdrLen      = 14
)

// slotMacOff is where tpacket_rcv puts the MAC header of an Ethernet frame
// in a slot (tp_mac).
func slotMacOff(vnet bool) int {
	mac := slotNetBase + ringReserve - ethHdrLen
	if vnet {
		mac += vnetHdrLen
	}
	return mac
}

// ringSlotSize is the tp_frame_size that holds a frame of maxFrame bytes
// (as the kernel stores it: up to maxFrame, tags included) after the slot
// header, the reserve and the virtio_net_hdr.
func ringSlotSize(maxFrame int, vnet bool) int {
	return (slotMacOff(vnet) + maxFrame + tpacketAlign - 1) &^ (tpacketAlign - 1)
}

// copyBufSize is the buffer a TP_STATUS_COPY frame is read into: the
// virtio_net_hdr, then the largest GSO frame (gso_max_size 64 KiB of
// L2 + IP + L4; the IP length fields stop there without BIG TCP) with
// room for the tags, and copyMac bytes in front for the tag rebuild.
const (
	copyMac     = 64
	copyBufSize = copyMac + 64<<10 + 256
)

// auxdataLen is sizeof(struct tpacket_auxdata).
const auxdataLen = int(unsafe.Sizeof(unix.TpacketAuxdata{}))

type ringGeometry struct {
	blockSize, blocks, frameSize int
}

// slots is how many frame slots the geometry gives: the kernel fills each
// block with whole slots and leaves the rest of it unused.
func (g ringGeometry) slots() int { return g.blockSize / g.frameSize * g.blocks }

// request is the PACKET_RX_RING request for the geometry.
func (g ringGeometry) request() *unix.TpacketReq {
	return &unix.TpacketReq{
		Block_size: uint32(g.blockSize),
		Block_nr:   uint32(g.blocks),
		Frame_size: uint32(g.frameSize),
		Frame_nr:   uint32(g.slots()),
	}
}

// rxRing is the user side of a TPACKET_V2 receive ring. Everything except
// outstanding, the counters and the unmap state is owned by the single
// receiving goroutine (Recv/Release).
type rxRing struct {
	mem       []byte
	blockSize int
	nblocks   int
	frameSize int     // tp_frame_size: bytes per slot
	slots     []int32 // ring offset of every slot, in the order the kernel fills them
	maxFrame  int

	cur   int    // next slot to read (the kernel fills them in the same order)
	held  []bool // slot handed out (or holding a pending super-frame), not given back yet
	taken uint64 // slots the walk has taken: progress, for the watchdog

	// Ring-full episodes (noteFull): whether the last release found the
	// ring full, and how many times it became so.
	full    bool
	freezes atomic.Uint64

	// The jam watchdog (watchdog_linux.go): its state, the number of
	// resynchronisations, and whether the ring may be rebuilt (port
	// queues: a socket in a fanout group cannot be unbound).
	wd          watchState
	resyncs     atomic.Uint64
	rebuildable bool
	// dead is set when a rebuild failed half-way: the ring is gone, Recv
	// reports it.
	dead error

	outstanding atomic.Int64 // frames handed out, ring and arena

	// CHECKSUM_PARTIAL frames (TP_STATUS_CSUMNOTREADY) whose L4 checksum
	// fill completed, and those it could not (see fixL4Checksum).
	csumFixed, csumSkipped atomic.Uint64

	unmapMu  sync.Mutex
	unmapped bool

	// GSO (port queues with PACKET_VNET_HDR): every frame has a
	// virtio_net_hdr in front of its MAC header; super-frames are cut into
	// segments written to arena slots (see gso_linux.go).
	vnet      bool
	arena     []byte  // nslots * slotSize bytes
	slotSize  int     // ringReserve + maxFrame, rounded up
	free      []int32 // free slot stack
	nfree     int
	seg       superFrame // super-frame being segmented, if segActive
	segActive bool
	segSlot   int // ring slot holding seg.frame, or -1 when it is in copyBuf

	// TP_STATUS_COPY (port queues): a frame longer than a slot is also
	// queued on the socket's receive queue in full; fill reads it from
	// there into copyBuf with recvCopy.
	fd       int
	copyBuf  []byte
	oob      []byte // control message buffer (PACKET_AUXDATA)
	recvCopy func(p, oob []byte) (n, oobn, flags int, err error)
	rmsg     unix.Msghdr
	riov     unix.Iovec
	// sockErr is a socket error (sk_err) that a recvmsg of a
	// TP_STATUS_COPY frame consumed: the next wait reports it.
	sockErr error
	// Keeping the receive queue in step (see resyncCopy): fence stops
	// (true) and restarts (false) delivery to the socket (nil for rings
	// in memory, where nothing else writes); copySkip is the number of
	// TP_STATUS_COPY slots ahead whose skbs a resync discarded;
	// copyResyncs counts the resyncs.
	fence       func(stop bool) error
	copySkip    int
	copyResyncs atomic.Uint64
	copyNote    bool // a resync happened that Recv has not logged yet

	gsoFrames, gsoSegments, gsoDropped atomic.Uint64

	pollfds     [2]unix.PollFd
	pollTimeout unix.Timespec // socket + eventfd wait on our own thread (rxwait.SpreadIdle; Close wakes us)
	// tsArg is the timeout handed to ppoll: the kernel writes the time
	// left back into it, so it is refilled from pollTimeout every call
	// (passing pollTimeout directly makes every later ppoll a zero-timeout
	// spin).
	tsArg unix.Timespec
	// Edge-triggered wait (see Queue.wait): an epoll set created on first
	// use holding the eventfd and, while armed, the socket with EPOLLET.
	epfd   int
	haveEp bool
	armed  bool
	arms   int // times armed (tests)
	events [2]unix.EpollEvent

	// Interrupt moderation (see rxNap): the next empty wait on the
	// goroutine's own thread first naps rxNap without the socket (set
	// when the last batch came while frames were streaming).
	nap bool
}

// newRxRing sets up a TPACKET_V2 receive ring on fd and maps it.
func newRxRing(fd int, g ringGeometry, vnet bool) (*rxRing, error) {
	if vnet {
		// Must precede the ring: the kernel refuses it (EBUSY) after.
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
			return nil, fmt.Errorf("PACKET_VNET_HDR: %w", err)
		}
		if err := setCopyMode(fd, g.blockSize*g.blocks); err != nil {
			return nil, err
		}
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V2); err != nil {
		return nil, fmt.Errorf("PACKET_VERSION TPACKET_V2: %w", err)
	}
	// Headroom for the pipeline plus the tag we may rebuild in front of the
	// MAC header.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_RESERVE, ringReserve); err != nil {
		return nil, fmt.Errorf("PACKET_RESERVE: %w", err)
	}
	if err := unix.SetsockoptTpacketReq(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, g.request()); err != nil {
		return nil, fmt.Errorf("PACKET_RX_RING (%d blocks of %d bytes, %d slots of %d bytes): %w",
			g.blocks, g.blockSize, g.slots(), g.frameSize, err)
	}
	mem, err := unix.Mmap(fd, 0, g.blockSize*g.blocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("mmap rx ring: %w", err)
	}
	r := newRingState(mem, g, vnet)
	r.fd = fd
	if vnet {
		r.recvCopy = r.recvmsg
	}
	return r, nil
}

// setCopyMode asks the kernel to queue frames longer than a slot on the
// socket's receive queue as well (PACKET_COPY_THRESH: any non-zero value),
// with PACKET_AUXDATA control messages, and gives that queue room for the
// GSO super-frames a ring of ringBytes may announce at once.
func setCopyMode(fd, ringBytes int) error {
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_COPY_THRESH, 1); err != nil {
		return fmt.Errorf("PACKET_COPY_THRESH: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
		return fmt.Errorf("PACKET_AUXDATA: %w", err)
	}
	// tpacket_rcv queues a copy only while sk_rmem_alloc < sk_rcvbuf; past
	// that a super-frame is truncated in its slot and dropped. Skbs sit
	// there only until fill reaches their slots. SO_RCVBUFFORCE (we have
	// CAP_NET_ADMIN) ignores net.core.rmem_max; SO_RCVBUF is the fallback.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, ringBytes); err != nil {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, ringBytes); err != nil {
			return fmt.Errorf("SO_RCVBUF %d: %w", ringBytes, err)
		}
	}
	return nil
}

// newRingState builds the user-side state of a ring mapped at mem (also
// used by tests on rings built in memory).
func newRingState(mem []byte, g ringGeometry, vnet bool) *rxRing {
	r := &rxRing{
		vnet:        vnet,
		mem:         mem,
		blockSize:   g.blockSize,
		nblocks:     g.blocks,
		frameSize:   g.frameSize,
		maxFrame:    defaultFrameSize,
		slots:       make([]int32, g.slots()),
		held:        make([]bool, g.slots()),
		segSlot:     -1,
		fd:          -1,
		pollTimeout: unix.NsecToTimespec(int64(rxwait.SpreadIdle)),
	}
	// packet_lookup_frame: slot i is frame i%per of block i/per.
	per := g.blockSize / g.frameSize
	for i := range r.slots {
		r.slots[i] = int32(i/per*g.blockSize + i%per*g.frameSize)
	}
	if vnet {
		r.copyBuf = make([]byte, copyBufSize)
		r.oob = make([]byte, unix.CmsgSpace(auxdataLen))
	}
	return r
}

// geometry is the ring's geometry (for a rebuild).
func (r *rxRing) geometry() ringGeometry {
	return ringGeometry{blockSize: r.blockSize, blocks: r.nblocks, frameSize: r.frameSize}
}

// Batch.Meta of a frame: a ring slot is its index in the low 32 bits and,
// above them, the value of rxRing.taken right after the walk took it (31
// bits, for noteFull); an arena slot is arenaMeta plus its index.
const (
	arenaMeta  = uint64(1) << 63
	metaSlot   = uint64(1)<<32 - 1
	metaTakenS = 32
	takenMask  = uint64(1)<<31 - 1
)

// ringMeta is the Batch.Meta of ring slot slot, just taken.
func (r *rxRing) ringMeta(slot int) uint64 {
	return uint64(slot) | (r.taken&takenMask)<<metaTakenS
}

// gsoSlots is how many segment slots a GSO-capable ring owns: two full
// batches of the default size plus a 64 KiB super-frame's worth at MSS 536.
const gsoSlots = 2*backend.DefaultBatch + 128

// initArena allocates the segment arena for frames of up to maxFrame bytes.
func (r *rxRing) initArena(maxFrame, nslots int) {
	r.slotSize = (ringReserve + maxFrame + 63) &^ 63
	r.arena = make([]byte, nslots*r.slotSize)
	r.free = make([]int32, nslots)
	for i := range r.free {
		r.free[i] = int32(nslots - 1 - i)
	}
	r.nfree = nslots
}

// pending reports whether a super-frame still has segments to hand out.
func (r *rxRing) pending() bool { return r.segActive }

// emitSegments moves segments of the pending super-frame into b from
// position n while there is room in b and a free slot; it returns the new n
// and the bytes added, and ends the super-frame when it is done (giving
// its ring slot back).
func (r *rxRing) emitSegments(b *backend.Batch, n int) (int, int) {
	nbytes := 0
	var segs uint64
	capacity := b.Cap()
	for n < capacity && r.nfree > 0 && !r.seg.done() {
		r.nfree--
		slot := int(r.free[r.nfree])
		lo := slot * r.slotSize
		buf := r.arena[lo : lo+r.slotSize : lo+r.slotSize]
		ln := r.seg.next(buf[ringReserve:])
		b.Buf[n] = buf
		b.Off[n] = ringReserve
		b.Len[n] = ln
		b.Meta[n] = arenaMeta | uint64(slot)
		nbytes += ln
		n++
		segs++
	}
	if segs != 0 {
		r.gsoSegments.Add(segs)
	}
	if r.seg.done() {
		r.seg.frame = nil
		r.segActive = false
		if r.segSlot >= 0 {
			r.giveBack(r.segSlot)
			r.segSlot = -1
		}
	}
	return n, nbytes
}

func (r *rxRing) u32(off int) uint32 { return *(*uint32)(unsafe.Pointer(&r.mem[off])) }
func (r *rxRing) u16(off int) uint16 { return *(*uint16)(unsafe.Pointer(&r.mem[off])) }

// slotStatus is tp_status of a slot: TP_STATUS_KERNEL (0) while the kernel
// owns it, TP_STATUS_USER and flags once it holds a frame for us.
func (r *rxRing) slotStatus(slot int) uint32 {
	return atomic.LoadUint32((*uint32)(unsafe.Pointer(&r.mem[r.slots[slot]+tp2Status])))
}

// giveBack hands a slot back to the kernel. Slots go back in any order;
// the kernel only ever looks at the one under its own head.
func (r *rxRing) giveBack(slot int) {
	r.held[slot] = false
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&r.mem[r.slots[slot]+tp2Status])), unix.TP_STATUS_KERNEL)
}

// ready reports whether fill would find a frame.
func (r *rxRing) ready() bool {
	if r.pending() {
		return r.nfree > 0
	}
	return r.readable()
}

// readable reports whether the slot under the cursor holds a new frame. A
// slot we handed out and that is still held is user-owned too: when the
// cursor wraps around to it, it is not new.
func (r *rxRing) readable() bool {
	return !r.held[r.cur] && r.slotStatus(r.cur)&unix.TP_STATUS_USER != 0
}

// wrapped reports whether the cursor has come round to a slot the caller
// still holds: the kernel cannot fill it, so nothing arrives until Release.
func (r *rxRing) wrapped() bool { return r.held[r.cur] }

// rxView is what fill learns about the frame in one slot.
type rxView struct {
	buf     []byte // the memory holding the frame: the slot from its scratch area on, or copyBuf
	off, ln int    // the frame is buf[off:off+ln]
	wire    int    // tp_len
	status  uint32 // TP_STATUS_* flags describing the frame
	tci     uint16
	tpid    uint16
	gsoType uint8
	gsoSize int
	ok      bool // complete and usable
	copied  bool // read from the receive queue (TP_STATUS_COPY): the slot is already back
}

// fill walks the ring and appends frames to b until it is full or the
// slot under the cursor is not ours. It returns the frames added, their
// bytes and the number of frames dropped (truncated, oversize, or GSO
// super-frames that cannot be segmented). Per slot: take it (nextSlot),
// read its header (inspect), fetch the full frame from the receive queue
// if the slot only has its head (fetchCopy), put the VLAN tag back
// (restoreTag), then segment, hand out or drop it.
func (r *rxRing) fill(b *backend.Batch) (added, nbytes, dropped int) {
	n := b.N
	capacity := b.Cap()
	var fixed, skipped uint64
	for n < capacity {
		if r.pending() {
			var nb int
			n, nb = r.emitSegments(b, n)
			nbytes += nb
			if r.pending() {
				break // batch full or every arena slot held
			}
			continue
		}
		slot, ok := r.nextSlot()
		if !ok {
			break
		}
		v := r.inspect(slot)
		if v.status&unix.TP_STATUS_COPY != 0 && r.recvCopy != nil {
			r.fetchCopy(&v)
			r.giveBack(slot) // everything we need is in copyBuf now
		}
		r.restoreTag(&v)
		switch {
		case !v.ok:
			if v.gsoType != vnetGSONone {
				r.gsoDropped.Add(1) // a super-frame truncated, its copy missing
			}
		case v.gsoType != vnetGSONone:
			if r.startSegments(&v, slot) {
				continue // its slot (if any) goes back after the last segment
			}
			r.gsoDropped.Add(1)
		case v.copied || v.ln > r.maxFrame:
			// Longer than the frame size. (A frame read from the
			// receive queue is always that: slots hold maxFrame.)
		default:
			if v.status&unix.TP_STATUS_CSUMNOTREADY != 0 {
				// Checksum left to hardware by the sender (TX
				// offload): complete it on the frame as it is on
				// the wire (tag rebuilt), or it leaves us wrong.
				if fixL4Checksum(v.buf[v.off:v.off+v.ln]) == csumFixed {
					fixed++
				} else {
					skipped++
				}
			}
			b.Buf[n] = v.buf
			b.Off[n] = v.off
			b.Len[n] = v.ln
			b.Meta[n] = r.ringMeta(slot)
			r.held[slot] = true
			nbytes += v.ln
			n++
			continue
		}
		dropped++
		if !v.copied {
			r.giveBack(slot)
		}
	}
	added = n - b.N
	b.N = n
	if fixed != 0 {
		r.csumFixed.Add(fixed)
	}
	if skipped != 0 {
		r.csumSkipped.Add(skipped)
	}
	r.outstanding.Add(int64(added))
	return added, nbytes, dropped
}

// nextSlot takes the slot under the cursor if it holds a new frame and
// moves the cursor on.
func (r *rxRing) nextSlot() (int, bool) {
	if !r.readable() {
		return 0, false
	}
	slot := r.cur
	r.cur++
	if r.cur == len(r.slots) {
		r.cur = 0
	}
	r.taken++
	return slot, true
}

// inspect reads a slot's tpacket2_hdr (and virtio_net_hdr) and checks the
// frame is complete and lies inside the slot. The view starts at the
// scratch area after the sockaddr_ll, so everything in front of the MAC
// header (14 + PACKET_RESERVE bytes at least) is headroom.
func (r *rxRing) inspect(slot int) rxView {
	p := int(r.slots[slot])
	status := r.u32(p + tp2Status)
	snap := int(r.u32(p + tp2Snaplen))
	v := rxView{
		wire:   int(r.u32(p + tp2Len)),
		status: status,
		tci:    r.u16(p + tp2VlanTCI),
		tpid:   r.u16(p + tp2VlanTPID),
	}
	start := p + slotScratchOff
	mac := p + int(r.u16(p+tp2Mac))
	end := mac + snap
	if mac < start || end > p+r.frameSize {
		return v // the kernel never writes such a header
	}
	if r.vnet && mac-vnetHdrLen >= start {
		// Read before the tag rebuild, which overwrites its tail. The
		// kernel writes it also when it truncates the frame.
		v.gsoType, v.gsoSize = readVnetHdr(r.mem[mac-vnetHdrLen : mac])
	}
	v.buf = r.mem[start:end:end]
	v.off = mac - start
	v.ln = snap
	v.ok = snap == v.wire && snap >= 12 && (!r.vnet || mac-vnetHdrLen >= start)
	return v
}

// copyReadTries bounds the recvmsg calls for one TP_STATUS_COPY slot.
// Only a pending socket error (ENETDOWN, one per link-down event) or EINTR
// fails a read before it dequeues the skb; past this many the head of the
// queue is unknown and resyncCopy takes over.
const copyReadTries = 16

// fetchCopy reads the full frame of a TP_STATUS_COPY slot from the
// socket's receive queue into copyBuf: the virtio_net_hdr first (the socket
// has PACKET_VNET_HDR), the frame from copyMac on. tpacket_rcv queues the
// skb under the same lock that assigns the slot and sets the slot's status
// only after that, so the queue holds one skb per TP_STATUS_COPY slot not
// yet read, in slot order: the head of the queue is this slot's frame.
// Exactly one dequeued skb per such slot keeps it that way: a read that
// fails before dequeuing (a pending socket error, kept for wait) is
// repeated; one that fails after (EINVAL: the kernel could not describe
// the skb in a virtio_net_hdr) has consumed it. The VLAN tag and the
// checksum state come from the PACKET_AUXDATA control message, which
// describes the skb itself; its length must match the slot's tp_len.
//
// When the step is lost all the same (no skb for the slot, or not its own
// length, or socket errors without end), resyncCopy restores it; the
// slot's frame is dropped.
func (r *rxRing) fetchCopy(v *rxView) {
	v.copied = true
	v.ok = false
	if r.copySkip > 0 {
		r.copySkip-- // its skb went with a resync
		return
	}
	p := r.copyBuf[copyMac-vnetHdrLen:]
	var n, oobn, flags int
	var err error
	for range copyReadTries {
		n, oobn, flags, err = r.recvCopy(p, r.oob)
		if err == nil || err == unix.EAGAIN || err == unix.EINVAL || err == unix.EFAULT {
			break
		}
		if err != unix.EINTR {
			// A pending socket error (ENETDOWN, ...) is reported by
			// recvmsg before any queued skb and cleared by it: keep
			// it for wait and read the frame again.
			r.sockErr = err
		}
	}
	switch err {
	case nil:
	case unix.EINVAL, unix.EFAULT:
		return // dequeued, then refused: still in step
	default:
		// EAGAIN: no skb for this slot. Anything else: the skb may
		// still be queued. Either way the queue is out of step.
		r.resyncCopy()
		return
	}
	aux, ok := parseAuxdata(r.oob[:oobn])
	if !ok {
		return // the socket always asks for PACKET_AUXDATA
	}
	if int(aux.Snaplen) != v.wire {
		r.resyncCopy() // another slot's skb
		return
	}
	ln := n - vnetHdrLen
	if flags&unix.MSG_TRUNC != 0 || ln != v.wire || ln < 12 {
		return // this slot's frame, longer than copyBuf or too short
	}
	v.buf = r.copyBuf[: copyMac+ln : copyMac+ln]
	v.off = copyMac
	v.ln = ln
	v.status = aux.Status | unix.TP_STATUS_COPY
	v.tci = aux.Vlan_tci
	v.tpid = aux.Vlan_tpid
	v.gsoType, v.gsoSize = readVnetHdr(p[:vnetHdrLen])
	v.ok = true
}

// resyncCopy puts the receive queue back in step with the ring when the
// skb at its head is not the next TP_STATUS_COPY slot's. Nobody can say
// which slot a queued skb belongs to, so it starts over from a known
// state: it stops delivery (fence: the socket is unbound, and the kernel
// waits until no tpacket_rcv runs for it, so every slot it assigned has
// its status and every skb is queued), counts the TP_STATUS_COPY slots
// the walk has yet to reach, discards the whole receive queue, and lets
// frames in again. Those slots then drop their frames without a read
// (copySkip); every slot written afterwards has its own skb at the head
// of the queue again. A few super-frames are lost, plus whatever arrives
// while the socket is unbound; the walk never stays out of step.
func (r *rxRing) resyncCopy() {
	r.copyResyncs.Add(1)
	r.copyNote = true
	fenced := false
	if r.fence != nil {
		if err := r.fence(true); err != nil {
			r.sockErr = err // resync anyway; a later mismatch repeats it
		} else {
			fenced = true
		}
	}
	k := 0
	for i, s := 0, r.cur; i < len(r.slots) && !r.held[s]; i++ {
		st := r.slotStatus(s)
		if st&unix.TP_STATUS_USER == 0 {
			break
		}
		if st&unix.TP_STATUS_COPY != 0 {
			k++
		}
		if s++; s == len(r.slots) {
			s = 0
		}
	}
	r.drainQueue()
	r.copySkip = k
	if fenced {
		if err := r.fence(false); err != nil {
			r.sockErr = err
		}
	}
}

// recvmsg is recvCopy on the real socket: recvmsg(2) with preallocated
// arguments (unix.Recvmsg allocates the peer address).
func (r *rxRing) recvmsg(p, oob []byte) (n, oobn, flags int, err error) {
	r.riov.Base = &p[0]
	r.riov.SetLen(len(p))
	r.rmsg.Iov = &r.riov
	r.rmsg.SetIovlen(1)
	r.rmsg.Control = &oob[0]
	r.rmsg.SetControllen(len(oob))
	r.rmsg.Flags = 0
	// MSG_DONTWAIT: it never blocks, a raw system call (see txScratch.send).
	nr, _, e := unix.RawSyscall(unix.SYS_RECVMSG, uintptr(r.fd), uintptr(unsafe.Pointer(&r.rmsg)), unix.MSG_DONTWAIT)
	r.riov.Base = nil
	if e != 0 {
		return 0, 0, 0, e
	}
	return int(nr), int(r.rmsg.Controllen), int(r.rmsg.Flags), nil
}

// parseAuxdata finds the PACKET_AUXDATA control message in oob without
// allocating (unix.ParseSocketControlMessage does).
func parseAuxdata(oob []byte) (unix.TpacketAuxdata, bool) {
	var aux unix.TpacketAuxdata
	hdr := unix.CmsgLen(0)
	for len(oob) >= hdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < hdr || l > len(oob) {
			return aux, false
		}
		if h.Level == unix.SOL_PACKET && h.Type == unix.PACKET_AUXDATA && l >= unix.CmsgLen(auxdataLen) {
			d := oob[hdr:l]
			ne := binary.NativeEndian
			aux.Status = ne.Uint32(d[0:])
			aux.Len = ne.Uint32(d[4:])
			aux.Snaplen = ne.Uint32(d[8:])
			aux.Mac = ne.Uint16(d[12:])
			aux.Net = ne.Uint16(d[14:])
			aux.Vlan_tci = ne.Uint16(d[16:])
			aux.Vlan_tpid = ne.Uint16(d[18:])
			return aux, true
		}
		next := unix.CmsgSpace(l - hdr)
		if next >= len(oob) {
			break
		}
		oob = oob[next:]
	}
	return aux, false
}

// restoreTag puts back the VLAN tag the kernel moved out of the frame
// (TP_STATUS_VLAN_VALID; TPID 0x8100 unless TP_STATUS_VLAN_TPID_VALID
// names another).
func (r *rxRing) restoreTag(v *rxView) {
	if !v.ok || v.status&unix.TP_STATUS_VLAN_VALID == 0 {
		return
	}
	if v.off < rebuiltTagLen || v.ln < 12 {
		// No room in front of the frame for the tag (the kernel never
		// writes such a header; a garbled one must not panic).
		v.ok = false
		return
	}
	tpid := uint16(0x8100)
	if v.status&unix.TP_STATUS_VLAN_TPID_VALID != 0 && v.tpid != 0 {
		tpid = v.tpid
	}
	rebuildTag(v.buf, v.off, tpid, v.tci)
	v.off -= rebuiltTagLen
	v.ln += rebuiltTagLen
}

// startSegments checks a GSO super-frame and makes it the pending one;
// emitSegments then cuts it. A super-frame in its ring slot keeps the slot
// until the last segment is out; one in copyBuf has given its slot back.
func (r *rxRing) startSegments(v *rxView, slot int) bool {
	if r.arena == nil || !r.seg.parse(v.buf[v.off:v.off+v.ln], v.gsoType, v.gsoSize, r.maxFrame) {
		return false
	}
	r.gsoFrames.Add(1)
	r.segActive = true
	r.segSlot = -1
	if !v.copied {
		r.segSlot = slot
		r.held[slot] = true
	}
	return true
}

// release gives the slots of b's frames back to the kernel, and its
// segments' arena slots back to the free stack. Before the first ring slot
// goes back it looks whether the kernel is waiting for it (noteFull).
func (r *rxRing) release(b *backend.Batch) {
	looked := false
	for i := 0; i < b.N; i++ {
		if m := b.Meta[i]; m&arenaMeta != 0 {
			if slot := int(m &^ arenaMeta); slot < len(r.free) && r.nfree < len(r.free) {
				r.free[r.nfree] = int32(slot)
				r.nfree++
			}
			continue
		}
		slot := b.Meta[i] & metaSlot
		if slot < uint64(len(r.held)) && r.held[slot] {
			if !looked {
				r.noteFull(int(slot), b.Meta[i]>>metaTakenS&takenMask)
				looked = true
			}
			r.giveBack(int(slot))
		}
	}
	r.outstanding.Add(-int64(b.N))
}

// noteFull counts ring-full episodes (ring_freezes) as the ring shows
// them, whoever reads the counters and however often. It runs when a batch
// is released, before its first ring slot (first, the oldest, which the
// walk took when rxRing.taken became taken) goes back: the moment the ring
// is fullest. The kernel waits on first exactly when it has written the
// slot before it again since the walk took first, i.e. gone all the way
// round: that slot then holds a frame not yet read, or the walk has taken
// it since (taken has grown by a lap). The ring is then full, and the
// kernel drops whatever arrives until this release. A freeze is counted
// when the ring is seen full after it was last seen not full, so a
// sustained overload is one event however many batches it lasts. It never
// allocates.
func (r *rxRing) noteFull(first int, taken uint64) {
	n := len(r.slots)
	if n < 2 {
		return
	}
	prev := first - 1
	if prev < 0 {
		prev = n - 1
	}
	lapped := (r.taken-taken)&takenMask >= uint64(n-1)
	full := lapped || !r.held[prev] && r.slotStatus(prev)&unix.TP_STATUS_USER != 0
	if full && !r.full {
		r.freezes.Add(1)
	}
	r.full = full
}

// takeSockErr returns (and forgets) a socket error a recvmsg consumed.
func (r *rxRing) takeSockErr() error {
	err := r.sockErr
	r.sockErr = nil
	return err
}

// armEdge adds the socket to the ring's epoll set, edge-triggered: from
// now on a wait returns on the kernel's next sk_data_ready (one per frame
// for TPACKET_V2), whatever the level state of the ring says. The epoll
// set is created on first use, with the eventfd Close writes.
func (r *rxRing) armEdge(sock, wake int) error {
	if !r.haveEp {
		ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			return fmt.Errorf("epoll_create1: %w", err)
		}
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wake)}
		if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
			_ = unix.Close(ep)
			return fmt.Errorf("epoll_ctl add eventfd: %w", err)
		}
		r.epfd, r.haveEp = ep, true
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLERR | unix.EPOLLET, Fd: int32(sock)}
	if err := unix.EpollCtl(r.epfd, unix.EPOLL_CTL_ADD, sock, &ev); err != nil {
		return fmt.Errorf("epoll_ctl add socket: %w", err)
	}
	r.armed = true
	r.arms++
	return nil
}

// disarmEdge takes the socket out of the epoll set again, so the kernel
// does not run our epoll callback for every frame while we are busy.
func (r *rxRing) disarmEdge(sock int) {
	if r.armed {
		_ = unix.EpollCtl(r.epfd, unix.EPOLL_CTL_DEL, sock, nil)
		r.armed = false
	}
}

// closeEdge closes the epoll set, if one was created.
func (r *rxRing) closeEdge() {
	if r.haveEp {
		_ = unix.Close(r.epfd)
		r.haveEp, r.armed = false, false
	}
}

// maybeUnmap unmaps the ring once the queue is closed and no frame is
// outstanding. Callers guarantee the queue is closed.
func (r *rxRing) maybeUnmap() {
	r.unmapMu.Lock()
	if !r.unmapped && r.outstanding.Load() <= 0 {
		r.unmapLocked()
	}
	r.unmapMu.Unlock()
}

func (r *rxRing) unmap() {
	r.unmapMu.Lock()
	if !r.unmapped {
		r.unmapLocked()
	}
	r.unmapMu.Unlock()
}

func (r *rxRing) unmapLocked() {
	_ = unix.Munmap(r.mem)
	r.mem = nil
	r.unmapped = true
}

// rebuildTag re-inserts a VLAN tag the kernel moved out of the frame: the
// 12 address bytes at frame[mac:] move 4 bytes towards the front and
// TPID+TCI are written in the gap. The caller guarantees mac >= 4 and
// len(frame) >= mac+12.
func rebuildTag(frame []byte, mac int, tpid, tci uint16) {
	copy(frame[mac-4:mac+8], frame[mac:mac+12])
	frame[mac+8] = byte(tpid >> 8)
	frame[mac+9] = byte(tpid)
	frame[mac+10] = byte(tci >> 8)
	frame[mac+11] = byte(tci)
}

// Interrupt moderation. A TPACKET_V2 socket wakes its reader for every
// frame. When the reader is faster than the traffic, it empties the ring,
// sleeps, and is woken again by the next frame: a wake-up (an IPI, a
// context switch, and on the sending CPU the kernel's try_to_wake_up from
// inside tpacket_rcv) for every frame or two, which costs the sender more
// than the frames themselves (BenchmarkRecvRelease lost half its rate).
// NAPI has the same problem and the same cure (napi_defer_hard_irqs,
// gro_flush_timeout): while traffic is flowing, poll again a little later
// instead of re-arming the per-frame interrupt. So when the queue waits on
// its own thread (frames stream) and the last batch came less than
// rxwait.BusyGap after the one before (rxwait.Waiter.Busy), an empty Recv
// first naps rxNap on the Close eventfd alone and then reads what
// gathered; only when that finds nothing does it sleep on the socket's
// per-frame wake-up. Isolated frames (light traffic) never wait for a
// nap, and an idle queue costs nothing.
const rxNap = 50 * time.Microsecond

// clockBase makes clock monotonic without allocating.
var clockBase = time.Now()

func clock() time.Duration { return time.Since(clockBase) }
