package afxdp

// Names of the counters a receiving Queue reports through
// backend.CustomStatser: the kernel's XDP_STATISTICS for its socket. They
// are JSON keys of the API's "backend" objects and values of the counter
// label of vswitch_port_backend_total and vswitch_uplink_backend_total:
// stable, never renamed.
const (
	// StatRxDropped counts frames the kernel dropped on the socket
	// (rx_dropped): in copy mode, frames longer than a UMEM chunk or with
	// no chunk to be copied into (those are in StatFillRingEmpty too).
	// QueueStats.RxOversize has the first kind only, RxDropped the second.
	StatRxDropped = "xsk_rx_dropped"
	// StatRxInvalidDescs counts RX descriptors the kernel found invalid
	// (rx_invalid_descs).
	StatRxInvalidDescs = "xsk_rx_invalid_descs"
	// StatTxInvalidDescs counts TX descriptors the kernel refused (bad
	// address or length: tx_invalid_descs); those frames were not sent.
	StatTxInvalidDescs = "xsk_tx_invalid_descs"
	// StatRxRingFull counts frames dropped because the RX ring was full
	// (rx_ring_full): the datapath did not keep up.
	StatRxRingFull = "xsk_rx_ring_full"
	// StatFillRingEmpty counts the times the kernel found the fill ring
	// empty (rx_fill_ring_empty_descs): no chunk to receive into, because
	// received batches were held instead of released.
	StatFillRingEmpty = "xsk_fill_ring_empty"
	// StatTxRingEmpty counts the times the kernel was woken to transmit and
	// found the TX ring empty (tx_ring_empty_descs). In copy mode every
	// poll on the socket also drives transmission, so a receiver sleeping
	// in Recv makes it grow with no frame lost: it is a measure of
	// wake-ups, not of trouble.
	StatTxRingEmpty = "xsk_tx_ring_empty"
)
