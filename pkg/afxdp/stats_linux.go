//go:build linux

package afxdp

import (
	"github.com/vswitch/vswitch/pkg/backend"
	"golang.org/x/sys/unix"
)

var _ backend.CustomStatser = (*Queue)(nil)

// CustomStats implements backend.CustomStatser. A receiving queue
// (RolePort, RoleUplinkRX) reports its socket's XDP_STATISTICS, in this
// order: StatRxDropped, StatRxInvalidDescs, StatTxInvalidDescs,
// StatRxRingFull, StatFillRingEmpty and StatTxRingEmpty. A transmit-only
// queue reports nothing: it sends through the socket of the receiver of
// its NIC queue, whose counters already include its frames, and counting
// them once per Queue would count them several times. Kernels before 5.9
// have only the first three counters; the others then stay 0.
func (q *Queue) CustomStats(dst []backend.Stat) []backend.Stat {
	if !q.receives() {
		return dst
	}
	st := q.socketStats()
	return append(dst,
		backend.Stat{Name: StatRxDropped, Value: st.Rx_dropped},
		backend.Stat{Name: StatRxInvalidDescs, Value: st.Rx_invalid_descs},
		backend.Stat{Name: StatTxInvalidDescs, Value: st.Tx_invalid_descs},
		backend.Stat{Name: StatRxRingFull, Value: st.Rx_ring_full},
		backend.Stat{Name: StatFillRingEmpty, Value: st.Rx_fill_ring_empty_descs},
		backend.Stat{Name: StatTxRingEmpty, Value: st.Tx_ring_empty_descs},
	)
}

// socketStats returns what the kernel counted on the queue's socket while
// the queue was its receiver. It reads XDP_STATISTICS while the socket is
// open and keeps the last answer, so after Close (which reads a last time)
// the values are final. The kernel's counters cover the socket's whole
// life; statsBase, taken when the queue became the receiver, leaves out
// what an earlier receiver of a shared socket already reported. Only
// receiving queues call it.
func (q *Queue) socketStats() unix.XDPStatistics {
	x := q.x
	x.txMu.Lock()
	defer x.txMu.Unlock()
	if !x.closed {
		if st, err := x.stats(); err == nil {
			q.lastStats = st
		}
	}
	return subStats(q.lastStats, q.statsBase)
}

// rxDrops sorts the frames the kernel dropped on the socket by reason:
// overrun (no room: the RX ring full, no chunk in the fill ring, a bad
// descriptor) and oversize (longer than a chunk: counted as malformed).
//
// The kernel's rx_dropped is not the oversize count alone. In copy mode
// (__xsk_rcv in net/xdp/xsk.c) it counts a frame longer than the chunk and
// also a frame for which xsk_buff_alloc found the fill ring empty, and that
// failed allocation is counted a second time in rx_fill_ring_empty_descs:
// so oversize is rx_dropped less the fill-ring misses. (Taking rx_dropped
// whole reported every fill-ring drop twice, as malformed and as
// rx_overrun.) In zero-copy mode the driver fills its descriptors from the
// fill ring itself and a miss never reaches rx_dropped, which then counts
// oversize frames only.
//
// The fill ring, and the kernel's count of its misses, belong to a NIC
// queue's pool, which the sockets sharing its UMEM share (see "Sockets per
// CPU" in the package doc): xsk.stats reports the count for class 0's
// socket only, so that the uplink's totals have each miss once. A shared
// socket's rx_dropped (shared) has its own misses in it, already in that
// count, and its oversize frames, with nothing to tell them apart: in copy
// mode it is left out (xsk_rx_dropped still shows it). Oversize frames
// cannot reach a socket whose chunk fits the MTU, which vswitchd
// enforces; class 0's oversize may come out short by the other sockets'
// misses (never below 0).
func rxDrops(st unix.XDPStatistics, zeroCopy, shared bool) (overrun, oversize uint64) {
	overrun = st.Rx_ring_full + st.Rx_fill_ring_empty_descs + st.Rx_invalid_descs
	oversize = st.Rx_dropped
	switch {
	case zeroCopy:
	case shared:
		oversize = 0
	default:
		oversize -= min(oversize, st.Rx_fill_ring_empty_descs)
	}
	return overrun, oversize
}

// subStats is a - b, field by field.
func subStats(a, b unix.XDPStatistics) unix.XDPStatistics {
	return unix.XDPStatistics{
		Rx_dropped:               a.Rx_dropped - b.Rx_dropped,
		Rx_invalid_descs:         a.Rx_invalid_descs - b.Rx_invalid_descs,
		Tx_invalid_descs:         a.Tx_invalid_descs - b.Tx_invalid_descs,
		Rx_ring_full:             a.Rx_ring_full - b.Rx_ring_full,
		Rx_fill_ring_empty_descs: a.Rx_fill_ring_empty_descs - b.Rx_fill_ring_empty_descs,
		Tx_ring_empty_descs:      a.Tx_ring_empty_descs - b.Tx_ring_empty_descs,
	}
}
