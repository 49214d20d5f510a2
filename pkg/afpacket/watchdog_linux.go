//go:build linux

package afpacket

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// The jam watchdog (see "When the kernel loses step" in the package
// documentation).
//
// tpacket_rcv claims the slot under its head in rx_owner_map before it
// writes the virtio_net_hdr of a PACKET_VNET_HDR socket; when
// virtio_net_hdr_from_skb refuses the skb (a GSO type it cannot express,
// such as UFO, which a VM can send through its tap) it drops the frame
// without moving the head or releasing the claim. From then on every frame
// finds the head slot claimed and is dropped: the slot stays
// TP_STATUS_KERNEL, tp_drops rises, nothing is ever written again. Only a
// new ring (a new rx_owner_map) clears it.
//
// What the reader sees is the same for any loss of step with the kernel:
// the slot under its cursor stays free (TP_STATUS_KERNEL, not held) while
// the kernel counts drops and nothing arrives. The kernel writes the
// slot under its head first, and a free slot under an in-step head is
// written, never dropped on; so drops while the cursor slot stays free
// mean the kernel's head is stuck or elsewhere.
const (
	// watchInterval is the least time between two checks. Checks run
	// only when Recv is about to sleep (never while frames are flowing),
	// at most this often and at least every poll timeout (500 ms).
	watchInterval = 100 * time.Millisecond
	// watchStrikes is how many checks in a row must find drops rising,
	// nothing received and the cursor slot free before the ring is
	// resynchronised: one is already conclusive (see above); two leave
	// room for a race we did not think of. With a jammed ring the reader
	// wakes only at its poll timeout, so a jam lasts about one second.
	watchStrikes = 2
	// resyncLogEvery limits the warnings: a VM can jam its port again
	// and again (about once a second), and only counters may grow.
	resyncLogEvery = time.Minute
)

// watchState is the watchdog's memory of its last check.
type watchState struct {
	last    time.Duration // clock() of the last check
	drops   uint64        // the kernel's drop total then
	taken   uint64        // rxRing.taken then
	idle    bool          // the cursor slot was free then
	strikes int           // checks in a row that found the ring stuck
}

// watchAction is what a check asks the queue to do.
type watchAction int

const (
	watchNothing  watchAction = iota
	watchResynced             // the cursor jumped to a frame the kernel wrote elsewhere
	watchRebuild              // stuck with no frame anywhere: the ring must be rebuilt
)

// watch is one check, given the kernel's drop total now (see watchState).
// When the ring has been stuck for watchStrikes checks it moves the cursor
// to the oldest frame the kernel wrote behind a stuck cursor, if there is
// one, and otherwise asks for a rebuild. It never allocates.
func (r *rxRing) watch(drops uint64) watchAction {
	w := &r.wd
	idle := !r.pending() && !r.held[r.cur] && r.slotStatus(r.cur)&unix.TP_STATUS_USER == 0
	switch {
	case !idle || !w.idle || r.taken != w.taken:
		w.strikes = 0 // frames flowing or held: no jam to see
	case drops > w.drops:
		w.strikes++
	}
	w.idle, w.taken, w.drops = idle, r.taken, drops
	if w.strikes < watchStrikes {
		return watchNothing
	}
	if s, ok := r.oldestUser(); ok {
		r.cur = s
		w.strikes = 0
		r.resyncs.Add(1)
		return watchResynced
	}
	return watchRebuild
}

// oldestUser finds the first slot after the cursor that holds a frame we
// have not read: the oldest one the kernel wrote while the cursor was
// stuck on a free slot.
func (r *rxRing) oldestUser() (int, bool) {
	s := r.cur
	for range len(r.slots) - 1 {
		if s++; s == len(r.slots) {
			s = 0
		}
		if !r.held[s] && r.slotStatus(s)&unix.TP_STATUS_USER != 0 {
			return s, true
		}
	}
	return 0, false
}

// watch runs the jam watchdog if a check is due: Queue.wait calls it
// before it sleeps. It reads PACKET_STATISTICS (adding to the totals
// Stats reports) unless a Stats or Close call holds kstatMu: then the
// check waits for the next wait. When the ring must be rebuilt and cannot
// be (batches outstanding), the next check tries again.
func (q *Queue) watch() error {
	r := q.rx
	now := clock()
	if now-r.wd.last < watchInterval {
		return nil
	}
	// TryLock: Close takes kstatMu before the life lock our caller holds
	// a read lock of.
	if !q.kstatMu.TryLock() {
		return nil
	}
	q.addKernelStatsLocked()
	drops := q.kernelDrops
	q.kstatMu.Unlock()
	r.wd.last = now
	switch r.watch(drops) {
	case watchResynced:
		q.noteResync("the kernel wrote frames past a free slot under the cursor; moved the cursor to the oldest")
	case watchRebuild:
		if !r.rebuildable || r.outstanding.Load() != 0 || r.pending() {
			return nil
		}
		if err := q.rebuildRing(); err != nil {
			return &OpError{Op: "recv", Iface: q.ifname, Err: err}
		}
		q.noteResync("the kernel stopped filling the ring (a frame it could not describe jammed it); rebuilt the ring")
	}
	return nil
}

// noteResync logs a resynchronisation, at most once per resyncLogEvery
// (the counters say how many there were).
func (q *Queue) noteResync(what string) {
	now := clock()
	if q.lastResyncLog != 0 && now-q.lastResyncLog < resyncLogEvery {
		return
	}
	q.lastResyncLog = now
	r := q.rx
	q.log.Warn("afpacket: receive ring out of step with the kernel: "+what,
		"iface", q.ifname, StatRingResyncs, r.resyncs.Load(), StatCopyResyncs, r.copyResyncs.Load())
}

// rebuildRing gives the socket a new ring: with the socket unbound (no
// frame arrives meanwhile), the old ring is unmapped and freed and a new
// one of the same geometry set up and mapped, which also gives the kernel
// a new head and a clean rx_owner_map; anything left on the receive queue
// goes, and the socket is bound again. The caller has made sure no frame
// of the old ring is outstanding. If the ring cannot be set up again the
// queue is dead: every later Recv returns the error.
func (q *Queue) rebuildRing() error {
	r := q.rx
	if err := q.unbind(); err != nil {
		return fmt.Errorf("rebuild ring: %w", err)
	}
	if err := r.remap(q.fd); err != nil {
		r.dead = fmt.Errorf("rebuild ring: %w", err)
		return r.dead
	}
	r.drainQueue()
	if err := q.bindAll(); err != nil {
		return fmt.Errorf("rebuild ring: %w", err)
	}
	r.resyncs.Add(1)
	return nil
}

// remap replaces the ring mapped at r.mem with a new one of the same
// geometry (see rebuildRing) and resets the walk.
func (r *rxRing) remap(fd int) error {
	r.unmapMu.Lock()
	defer r.unmapMu.Unlock()
	if r.unmapped {
		return fmt.Errorf("ring already unmapped")
	}
	if err := unix.Munmap(r.mem); err != nil {
		return fmt.Errorf("munmap: %w", err)
	}
	r.mem = nil
	// A request of zero blocks frees the ring; a new one cannot be set
	// while the old one exists.
	if err := unix.SetsockoptTpacketReq(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &unix.TpacketReq{}); err != nil {
		return fmt.Errorf("PACKET_RX_RING (free): %w", err)
	}
	g := r.geometry()
	if err := unix.SetsockoptTpacketReq(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, g.request()); err != nil {
		return fmt.Errorf("PACKET_RX_RING: %w", err)
	}
	mem, err := unix.Mmap(fd, 0, g.blockSize*g.blocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("mmap rx ring: %w", err)
	}
	r.mem = mem
	r.cur = 0
	clear(r.held)
	r.wd = watchState{last: r.wd.last}
	r.copySkip = 0
	r.full = false
	return nil
}

// drainQueue discards every skb on the socket's receive queue (at most a
// ring's worth and then some: the queue is bounded by the receive buffer,
// and the socket is unbound while this runs).
func (r *rxRing) drainQueue() int {
	if r.recvCopy == nil {
		return 0
	}
	n := 0
	p := r.copyBuf[copyMac-vnetHdrLen:]
	for range 4*len(r.slots) + 64 {
		_, _, _, err := r.recvCopy(p, r.oob)
		switch err {
		case nil, unix.EINVAL, unix.EFAULT: // consumed
			n++
		case unix.EINTR:
		case unix.EAGAIN:
			return n
		default:
			r.sockErr = err // a socket error, reported by wait; go on
		}
	}
	return n
}
