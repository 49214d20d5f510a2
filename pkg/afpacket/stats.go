package afpacket

// Names of the counters a Queue reports through backend.CustomStatser.
// They are JSON keys of the API's "backend" objects and values of the
// counter label of vswitch_port_backend_total and
// vswitch_uplink_backend_total: stable, never renamed.
const (
	// StatGSOFrames counts GSO super-frames (TSO/GSO/USO on in the VM)
	// that Recv received and cut into wire-sized segments. Only port
	// queues (PACKET_VNET_HDR) see super-frames.
	StatGSOFrames = "gso_frames"
	// StatGSOSegments counts the frames Recv made by segmenting
	// super-frames; they are also in QueueStats.RxPackets.
	StatGSOSegments = "gso_segments"
	// StatGSODropped counts super-frames that could not be segmented
	// (unsupported gso_type such as UFO, IPv6 extension headers,
	// inconsistent headers, segments larger than the frame size) and were
	// dropped; they are also in QueueStats.RxOversize.
	StatGSODropped = "gso_dropped"
	// StatChecksumsFixed counts received frames whose TCP/UDP checksum was
	// left to offload (TP_STATUS_CSUMNOTREADY: the sender's
	// CHECKSUM_PARTIAL) and that Recv completed in place.
	StatChecksumsFixed = "checksums_fixed"
	// StatChecksumsUnfixed counts frames with TP_STATUS_CSUMNOTREADY that
	// Recv could not complete (not TCP/UDP over IPv4/IPv6 without extension
	// headers, a fragment, or truncated) and passed on unchanged: their
	// receivers will likely drop them.
	StatChecksumsUnfixed = "checksums_unfixed"
	// StatRingFreezes counts the times the RX ring became full: the
	// kernel had written every slot and its head waited on a frame the
	// reader still held, so whatever arrived until the reader released
	// it was dropped. Seen by the reader at each release (the moment the
	// ring is fullest); a full ring that stays full over many batches is
	// one event. These are events, not frames: the frames dropped
	// meanwhile are QueueStats.RxDropped. The count depends on the
	// traffic and the reader's pace only, not on how often or by whom the
	// counters are read.
	StatRingFreezes = "ring_freezes"
	// StatRingResyncs counts the times Recv found the RX ring out of step
	// with the kernel and resynchronised it: the kernel kept dropping
	// frames while the slot under Recv's cursor stayed free and nothing
	// arrived. Either the kernel had written frames elsewhere (the cursor
	// moves to the oldest) or it had stopped filling the ring for good,
	// which a frame with a GSO type the kernel cannot describe in a
	// virtio_net_hdr (UFO from a VM's tap) does to a port queue: the ring
	// is then rebuilt. See the package documentation.
	StatRingResyncs = "ring_resyncs"
	// StatCopyResyncs counts the times Recv found the socket's receive
	// queue out of step with the ring's TP_STATUS_COPY slots (the skb at
	// its head was missing or another slot's) and restarted both from a
	// known state, dropping the super-frames in flight. It should stay 0;
	// see the package documentation.
	StatCopyResyncs = "copy_resyncs"
)
