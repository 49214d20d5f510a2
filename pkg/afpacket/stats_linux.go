//go:build linux

package afpacket

import (
	"unsafe"

	"github.com/vswitch/vswitch/pkg/backend"
	"golang.org/x/sys/unix"
)

var _ backend.CustomStatser = (*Queue)(nil)

// CustomStats implements backend.CustomStatser. Every queue reports the
// same counters, in this order: StatGSOFrames, StatGSOSegments,
// StatGSODropped, StatChecksumsFixed, StatChecksumsUnfixed,
// StatRingFreezes, StatRingResyncs and StatCopyResyncs. They stay 0 where they cannot happen (a transmit-only
// queue has no ring; only port queues receive super-frames), so the set of
// names does not depend on the role.
func (q *Queue) CustomStats(dst []backend.Stat) []backend.Stat {
	var gsoFrames, gsoSegments, gsoDropped, fixed, unfixed, freezes, resyncs, copyResyncs uint64
	if r := q.rx; r != nil {
		freezes = r.freezes.Load()
		resyncs = r.resyncs.Load()
		copyResyncs = r.copyResyncs.Load()
		gsoFrames = r.gsoFrames.Load()
		gsoSegments = r.gsoSegments.Load()
		gsoDropped = r.gsoDropped.Load()
		fixed = r.csumFixed.Load()
		unfixed = r.csumSkipped.Load()
	}
	return append(dst,
		backend.Stat{Name: StatGSOFrames, Value: gsoFrames},
		backend.Stat{Name: StatGSOSegments, Value: gsoSegments},
		backend.Stat{Name: StatGSODropped, Value: gsoDropped},
		backend.Stat{Name: StatChecksumsFixed, Value: fixed},
		backend.Stat{Name: StatChecksumsUnfixed, Value: unfixed},
		backend.Stat{Name: StatRingFreezes, Value: freezes},
		backend.Stat{Name: StatRingResyncs, Value: resyncs},
		backend.Stat{Name: StatCopyResyncs, Value: copyResyncs},
	)
}

// kernelStats returns the total of frames the kernel dropped because the
// RX ring was full (tp_drops). It reads PACKET_STATISTICS first while the
// socket is open; after Close the total is final.
func (q *Queue) kernelStats() (drops uint64) {
	q.kstatMu.Lock()
	defer q.kstatMu.Unlock()
	if q.rx != nil && q.enter() {
		q.addKernelStatsLocked()
		q.exit()
	}
	return q.kernelDrops
}

// addKernelStatsLocked adds what PACKET_STATISTICS counted since the last
// read to the total: the kernel resets its counters on every read, so
// every read must be added. (tp_freeze_q_cnt is for TPACKET_V3 rings; the
// ring-full episodes of a V2 ring are counted from the ring itself, see
// rxRing.noteFull.) The caller holds kstatMu and keeps the socket open
// (enter, or the life write lock in Close).
//
// getsockopt by hand: unix.GetsockoptTpacketStats allocates its result;
// a raw system call, as it never blocks (see txScratch.send).
func (q *Queue) addKernelStatsLocked() {
	var st unix.TpacketStats
	n := uint32(unsafe.Sizeof(st))
	if _, _, e := unix.RawSyscall6(unix.SYS_GETSOCKOPT, uintptr(q.fd), unix.SOL_PACKET, unix.PACKET_STATISTICS,
		uintptr(unsafe.Pointer(&st)), uintptr(unsafe.Pointer(&n)), 0); e == 0 {
		q.kernelDrops += uint64(st.Drops)
	}
}
