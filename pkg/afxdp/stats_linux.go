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
