// Package backend is the contract between the switch engine (pkg/datapath)
// and the code that moves frames in and out of network interfaces
// (pkg/afpacket, pkg/afxdp, and the in-memory pkg/backend/queuetest).
//
// It is kept apart from the engine as wireguard-go keeps tun apart from
// device: a backend knows sockets and rings and nothing of ports, VLANs or
// the FDB; the engine knows forwarding and never sees a socket.
//
// The boundary is small and batch-first:
//
//	type Backend interface {
//	    Name() string
//	    Open(ifname string, cfg QueueConfig) (Queue, error)
//	}
//	type Queue interface {
//	    Recv(b *Batch) (int, error) // zero-copy views, valid until Release
//	    Release(b *Batch)
//	    Send(frames [][]byte) (int, error)
//	    Stats() QueueStats
//	    Close() error
//	}
//
// A Batch carries up to DefaultBatch frames as views into the backend's own
// buffers (ring blocks, UMEM chunks) with at least Headroom writable bytes in
// front of each, so the engine pushes VLAN tags in place without copying.
// The Role in QueueConfig tells a backend what a queue is for (a VM port, an
// uplink receive worker, a port's transmit queue on the uplink) so it can
// size rings and pick socket options. Split routes VM ports and the uplink to
// different backends (AF_XDP on the NIC, AF_PACKET on the taps).
//
// Counters every backend has are QueueStats; what only one backend counts
// (GSO segments, checksums completed, ring freezes, XSK drops) a Queue offers
// through the optional CustomStatser interface, as named counters the
// engine sums per port and for the uplink without knowing what they mean,
// as Open vSwitch's netdev get_custom_stats does.
package backend
