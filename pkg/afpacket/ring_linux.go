//go:build linux

package afpacket

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/vswitch/vswitch/pkg/backend"
	"golang.org/x/sys/unix"
)

// Offsets inside struct tpacket_block_desc (version, offset_to_priv, then
// struct tpacket_hdr_v1).
const (
	bdBlockStatus = 8
	bdNumPkts     = 12
	bdFirstPkt    = 16
)

// Offsets inside struct tpacket3_hdr.
const (
	phNextOffset = 0
	phSnaplen    = 12
	phLen        = 16
	phStatus     = 20
	phMac        = 24
	phVlanTCI    = 32
	phVlanTPID   = 36
)

type ringGeometry struct {
	blockSize, blocks, frameSize int
	timeout                      time.Duration
}

// rxRing is the user side of a TPACKET_V3 receive ring. Everything except
// outstanding and the unmap state is owned by the single receiving
// goroutine (Recv/Release).
type rxRing struct {
	mem       []byte
	blockSize int
	nblocks   int
	maxFrame  int

	cur     int  // block being walked, or next block to open
	open    bool // cur is owned by us and partly walked
	pktLeft int  // frames not yet walked in cur
	pktOff  int  // ring offset of the next frame header in cur

	refs   []int32 // frames handed out and not yet released, per block
	walked []bool  // block fully walked, goes back once refs reaches 0

	outstanding atomic.Int64 // frames handed out, all blocks

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
	segBlk    int // ring block holding seg.frame (one reference)

	gsoFrames, gsoSegments, gsoDropped atomic.Uint64

	pollfds     [2]unix.PollFd
	pollTimeout unix.Timespec // socket + eventfd wait (safety net, Close wakes us)
	idleTimeout unix.Timespec // one block timeout, see Queue.wait
	// tsArg is the timeout handed to ppoll: the kernel writes the time
	// left back into it, so it is refilled from the two above every call
	// (passing them directly makes every later ppoll a zero-timeout spin).
	tsArg unix.Timespec
}

func newRxRing(fd int, g ringGeometry, vnet bool) (*rxRing, error) {
	if vnet {
		// Must precede the ring: the kernel refuses it (EBUSY) after.
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
			return nil, fmt.Errorf("PACKET_VNET_HDR: %w", err)
		}
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return nil, fmt.Errorf("PACKET_VERSION TPACKET_V3: %w", err)
	}
	// Headroom for the pipeline plus the tag we may rebuild in front of the
	// MAC header.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_RESERVE, ringReserve); err != nil {
		return nil, fmt.Errorf("PACKET_RESERVE: %w", err)
	}
	tov := uint32((g.timeout + time.Millisecond - 1) / time.Millisecond)
	if tov == 0 {
		tov = 1
	}
	req := &unix.TpacketReq3{
		Block_size:     uint32(g.blockSize),
		Block_nr:       uint32(g.blocks),
		Frame_size:     uint32(g.frameSize),
		Frame_nr:       uint32(g.blockSize / g.frameSize * g.blocks),
		Retire_blk_tov: tov,
	}
	if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, req); err != nil {
		return nil, fmt.Errorf("PACKET_RX_RING (%d blocks of %d bytes): %w", g.blocks, g.blockSize, err)
	}
	mem, err := unix.Mmap(fd, 0, g.blockSize*g.blocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("mmap rx ring: %w", err)
	}
	return &rxRing{
		vnet:        vnet,
		mem:         mem,
		blockSize:   g.blockSize,
		nblocks:     g.blocks,
		maxFrame:    defaultFrameSize,
		refs:        make([]int32, g.blocks),
		walked:      make([]bool, g.blocks),
		pollTimeout: unix.NsecToTimespec(int64(pollTimeoutMillis) * int64(time.Millisecond)),
		idleTimeout: unix.NsecToTimespec(int64(tov) * int64(time.Millisecond)),
	}, nil
}

// arenaMeta marks a Batch.Meta entry as an arena slot (low bits: slot
// index) instead of a ring block.
const arenaMeta = uint64(1) << 63

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

// unref drops one reference on blk and gives it back if it was walked.
func (r *rxRing) unref(blk int) {
	r.refs[blk]--
	if r.refs[blk] == 0 && r.walked[blk] {
		r.giveBack(blk)
	}
}

// pending reports whether a super-frame still has segments to hand out.
func (r *rxRing) pending() bool { return r.segActive }

// emitSegments moves segments of the pending super-frame into b from
// position n while there is room in b and a free slot; it returns the new n
// and the bytes added, and ends the super-frame when it is done.
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
		r.unref(r.segBlk)
	}
	return n, nbytes
}

func (r *rxRing) u32(off int) uint32 { return *(*uint32)(unsafe.Pointer(&r.mem[off])) }
func (r *rxRing) u16(off int) uint16 { return *(*uint16)(unsafe.Pointer(&r.mem[off])) }

func (r *rxRing) blockStatus(blk int) uint32 {
	return atomic.LoadUint32((*uint32)(unsafe.Pointer(&r.mem[blk*r.blockSize+bdBlockStatus])))
}

// giveBack hands a block back to the kernel.
func (r *rxRing) giveBack(blk int) {
	r.walked[blk] = false
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&r.mem[blk*r.blockSize+bdBlockStatus])), unix.TP_STATUS_KERNEL)
}

// ready reports whether fill would find a frame (or a block to open).
func (r *rxRing) ready() bool {
	return (r.pending() && r.nfree > 0) || (!r.pending() && ((r.open && r.pktLeft > 0) || r.openable()))
}

// openable reports whether the block under the cursor is a new one from the
// kernel. A block we walked whose frames are still outstanding is also
// user-owned: when the cursor wraps around to it, it is not new.
func (r *rxRing) openable() bool {
	return !r.walked[r.cur] && r.blockStatus(r.cur)&unix.TP_STATUS_USER != 0
}

// fill walks the ring and appends frames to b until it is full or the ring
// has no more user-owned blocks. It returns the frames added, their bytes
// and the number of frames dropped (truncated, oversize or unsegmentable).
//
// Each round does one of: hand out segments of a pending super-frame
// (emitSegments), open the next block the kernel has retired (openBlock),
// or take the next frame of the open block (nextFrame) and then start
// segmenting it (startSuperFrame), drop it, or complete its checksum and
// put it in b (take).
func (r *rxRing) fill(b *backend.Batch) (n, nbytes, dropped int) {
	n = b.N
	capacity := b.Cap()
	var csum csumTally
	var f ringFrame
	for n < capacity {
		if r.pending() {
			var nb int
			n, nb = r.emitSegments(b, n)
			nbytes += nb
			if r.pending() {
				break // batch full or every slot held
			}
			continue
		}
		if !r.open {
			if !r.openBlock() {
				break
			}
			if r.pktLeft == 0 {
				r.finishBlock()
				continue
			}
		}
		r.nextFrame(&f)
		switch {
		case f.ok && f.gsoType != vnetGSONone:
			if !r.startSuperFrame(&f) {
				dropped++
			}
		case !f.ok || f.ln > r.maxFrame:
			dropped++
		default:
			if f.status&unix.TP_STATUS_CSUMNOTREADY != 0 {
				csum.complete(r.mem[f.start+f.off : f.start+f.off+f.ln])
			}
			r.take(b, n, &f)
			nbytes += f.ln
			n++
		}
		if r.pktLeft == 0 {
			r.finishBlock()
		}
	}
	added := n - b.N
	b.N = n
	if csum.fixed != 0 {
		r.csumFixed.Add(csum.fixed)
	}
	if csum.skipped != 0 {
		r.csumSkipped.Add(csum.skipped)
	}
	r.outstanding.Add(int64(added))
	return added, nbytes, dropped
}

// openBlock opens the block under the cursor if the kernel has retired it
// to us, ready for nextFrame, and reports whether it did. The block may
// hold no frame at all (pktLeft 0).
func (r *rxRing) openBlock() bool {
	if !r.openable() {
		return false
	}
	base := r.cur * r.blockSize
	r.open = true
	r.pktLeft = int(r.u32(base + bdNumPkts))
	r.pktOff = base + int(r.u32(base+bdFirstPkt))
	return true
}

// ringFrame is one frame of the open block, as nextFrame found it.
type ringFrame struct {
	// The frame is mem[start+off : start+off+ln]; the bytes from start
	// up to it are scratch the pipeline may write tags into, and end is
	// where the captured bytes stop.
	start, end, off, ln int
	status              uint32 // tp_status
	// ok: the frame was captured whole (not truncated to the slot), lies
	// within its block and is long enough to carry two MAC addresses.
	ok bool
	// GSO metadata from the virtio_net_hdr (port queues only):
	// vnetGSONone for an ordinary frame.
	gsoType uint8
	gsoSize int
}

// nextFrame reads the next frame header of the open block into f, moves
// the cursor past it and makes the frame what it was on the wire: a VLAN
// tag the kernel took out of the bytes is put back in front of the
// EtherType. (f is the caller's, filled in place: returning the struct
// costs measurably per frame.)
func (r *rxRing) nextFrame(f *ringFrame) {
	p := r.pktOff
	next := int(r.u32(p + phNextOffset))
	snap := int(r.u32(p + phSnaplen))
	wire := int(r.u32(p + phLen))
	mac := p + int(r.u16(p+phMac))
	*f = ringFrame{
		start:   p + frameScratchStartOff,
		end:     mac + snap,
		ln:      snap,
		status:  r.u32(p + phStatus),
		gsoType: vnetGSONone,
	}
	f.off = mac - f.start
	f.ok = snap == wire && f.end <= (r.cur+1)*r.blockSize && snap >= 12
	r.pktOff = p + next
	r.pktLeft--

	if f.ok && r.vnet {
		// Read before the tag rebuild, which overwrites its tail.
		if mac-vnetHdrLen < f.start {
			f.ok = false
		} else {
			f.gsoType, f.gsoSize = readVnetHdr(r.mem[mac-vnetHdrLen : mac])
		}
	}
	if f.ok && f.status&unix.TP_STATUS_VLAN_VALID != 0 {
		r.restoreTag(p, f)
	}
}

// restoreTag rebuilds the VLAN tag the kernel moved from frame f (header at
// ring offset p) into the ring header, and grows f by it.
func (r *rxRing) restoreTag(p int, f *ringFrame) {
	tpid := uint16(0x8100)
	if f.status&unix.TP_STATUS_VLAN_TPID_VALID != 0 {
		if t := r.u16(p + phVlanTPID); t != 0 {
			tpid = t
		}
	}
	tci := uint16(r.u32(p + phVlanTCI))
	rebuildTag(r.mem[f.start:f.end], f.off, tpid, tci)
	f.off -= rebuiltTagLen
	f.ln += rebuiltTagLen
}

// startSuperFrame begins segmenting the GSO super-frame f; emitSegments
// hands out the segments, starting in this same fill. The frame's block
// stays ours until the last segment is out. It reports false, counting
// the frame in gso_dropped, when f cannot be segmented.
func (r *rxRing) startSuperFrame(f *ringFrame) bool {
	if r.arena == nil || !r.seg.parse(r.mem[f.start+f.off:f.start+f.off+f.ln], f.gsoType, f.gsoSize, r.maxFrame) {
		r.gsoDropped.Add(1)
		return false
	}
	r.gsoFrames.Add(1)
	r.segActive = true
	r.segBlk = r.cur
	r.refs[r.cur]++
	return true
}

// take puts frame f of the block under the cursor at position n of b, as a
// view into the ring that holds a reference on the block until Release.
func (r *rxRing) take(b *backend.Batch, n int, f *ringFrame) {
	b.Buf[n] = r.mem[f.start:f.end:f.end]
	b.Off[n] = f.off
	b.Len[n] = f.ln
	b.Meta[n] = uint64(r.cur)
	r.refs[r.cur]++
}

// csumTally counts, over one fill, the frames whose checksum was left to
// offload (TP_STATUS_CSUMNOTREADY): completed or not. fill adds them to the
// ring's counters once, not once per frame.
type csumTally struct{ fixed, skipped uint64 }

// complete finishes the TCP/UDP checksum of frame, which the sender left
// to hardware (TX offload): as it is on the wire (tag rebuilt), or it
// leaves us wrong.
func (c *csumTally) complete(frame []byte) {
	if fixL4Checksum(frame) == csumFixed {
		c.fixed++
	} else {
		c.skipped++
	}
}

// finishBlock marks the current block walked, gives it back at once when no
// frame of it is outstanding, and moves to the next block.
func (r *rxRing) finishBlock() {
	blk := r.cur
	r.open = false
	r.walked[blk] = true
	if r.refs[blk] == 0 {
		r.giveBack(blk)
	}
	r.cur++
	if r.cur == r.nblocks {
		r.cur = 0
	}
}

// release drops b's references and gives fully walked blocks back.
func (r *rxRing) release(b *backend.Batch) {
	for i := 0; i < b.N; i++ {
		if m := b.Meta[i]; m&arenaMeta != 0 {
			if slot := int(m &^ arenaMeta); slot < len(r.free) && r.nfree < len(r.free) {
				r.free[r.nfree] = int32(slot)
				r.nfree++
			}
			continue
		}
		blk := int(b.Meta[i])
		if blk < 0 || blk >= r.nblocks {
			continue
		}
		r.refs[blk]--
		if r.refs[blk] == 0 && r.walked[blk] {
			r.giveBack(blk)
		}
	}
	r.outstanding.Add(-int64(b.N))
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
