package backend

import "errors"

// ErrClosed is returned by Queue.Recv and Queue.Send after Close.
var ErrClosed = errors.New("queue closed")

// ErrIdle is returned by Recv of a queue opened with QueueConfig.Polled
// when it would sleep: frames stopped streaming, and the caller's poll
// loop takes the queue back (see Polled).
var ErrIdle = errors.New("queue idle: back to its poller")

// Headroom is the minimum number of writable bytes every backend leaves in
// front of each received frame, so the pipeline can push an 802.1Q tag and an
// 802.1ad S-tag in place without copying the frame.
const Headroom = 8

// DefaultBatch is the batch size used by the pipeline.
const DefaultBatch = 64

// Role says what a queue is used for; backends size rings and socket options
// from it.
type Role int

const (
	// RolePort is a VM tap: receive and transmit.
	RolePort Role = iota
	// RoleUplinkRX is one of the uplink receive workers (fanout member).
	RoleUplinkRX
	// RoleUplinkTX is a port's own transmit queue on the uplink: transmit only.
	RoleUplinkTX
)

func (r Role) String() string {
	switch r {
	case RolePort:
		return "port"
	case RoleUplinkRX:
		return "uplink-rx"
	case RoleUplinkTX:
		return "uplink-tx"
	}
	return "unknown"
}

// QueueConfig configures one queue opened by a Backend.
type QueueConfig struct {
	Role Role
	// Batch is the maximum number of frames handled per Recv/Send (default DefaultBatch).
	Batch int
	// FanoutGroup, when non-zero, joins an RX queue to a load-balancing group
	// (PACKET_FANOUT_HASH for AF_PACKET). All RoleUplinkRX queues of one
	// switch share one group id.
	FanoutGroup uint16
	// QueueID is the NIC queue an AF_XDP socket binds to (RoleUplinkRX) .
	QueueID int
	// Promisc puts the interface in promiscuous mode (packet membership,
	// dropped automatically when the queue closes).
	Promisc bool
	// FrameSize is the largest frame the queue must carry, tags included
	// (default 2048 - headroom, enough for MTU 1500 + 2 tags).
	FrameSize int
	// Polled asks for a queue the caller's poll loop receives while frames
	// come far apart (it implements Polled; a backend that cannot ignores
	// the flag). RoleUplinkRX queues of a fanout group are then spread by
	// the CPU that received the frame while none streams (queue i gets the
	// frames of CPUs i, i+N, ...), by flow while one does.
	Polled bool
}

// Polled is a Queue opened with QueueConfig.Polled: a poll loop of the
// caller (pkg/datapath's CPU pollers) receives it with TryRecv whenever
// PollFD signals, until Streaming says a stream began; a goroutine of the
// caller then receives it with Recv, which returns ErrIdle once the stream
// is over, and the poll loop takes it back.
type Polled interface {
	Queue
	// PollFD is the descriptor that signals new frames: edge-triggered
	// EPOLLIN (and EPOLLERR), one event per frame or more.
	PollFD() int
	// TryRecv is Recv without waiting: (0, nil) when no frame is there.
	TryRecv(b *Batch) (int, error)
	// Streaming reports whether the frames TryRecv returned look like a
	// stream (a backlog, or batches in quick succession): Recv on a
	// thread of its own serves it better.
	Streaming() bool
	// IncomingCPU is the CPU that received the queue's last frame, -1
	// when unknown: its poll loop belongs there.
	IncomingCPU() int
}

// Backend opens queues on network interfaces.
type Backend interface {
	// Name is the backend's name as shown to users ("afpacket", "afxdp").
	Name() string
	Open(ifname string, cfg QueueConfig) (Queue, error)
}

// Queue is one batch-first frame queue on an interface. Recv is called by a
// single goroutine; Send must be safe to call from several goroutines at
// once; Close must be safe against concurrent Recv/Send (they then return
// ErrClosed, never touch a reused file descriptor).
type Queue interface {
	// Recv fills b with up to b.Cap() frames, blocking until at least one
	// frame is available or the queue is closed. Frames are exactly as they
	// were on the wire, VLAN tags included (a backend whose kernel interface
	// strips tags must rebuild them). Views stay valid until Release.
	Recv(b *Batch) (int, error)
	// Release returns the buffers of b to the backend and resets b.
	Release(b *Batch)
	// Send transmits frames (copied before it returns) and reports how many
	// were accepted.
	Send(frames [][]byte) (int, error)
	Stats() QueueStats
	Close() error
}

// QueueStats are a queue's own counters.
type QueueStats struct {
	RxPackets, RxBytes uint64
	TxPackets, TxBytes uint64
	RxDropped          uint64 // dropped by the kernel/ring before we saw them (ring full)
	RxOversize         uint64 // longer than the queue's frame size: dropped, counted as malformed
	TxErrors           uint64
}

// Batch is a set of received frames. Frame i is Buf[i][Off[i]:Off[i]+Len[i]];
// Off[i] >= Headroom, and the bytes before it are writable scratch that the
// pipeline may use to push tags in place. Backends fill Buf/Off/Len and N;
// the pipeline may change Off and Len of a frame (tag push/pop) before
// Release. Meta is free for backends (e.g. ring block or UMEM address).
type Batch struct {
	Buf  [][]byte
	Off  []int
	Len  []int
	Meta []uint64
	N    int
}

// NewBatch makes a batch with room for n frames.
func NewBatch(n int) *Batch {
	return &Batch{
		Buf:  make([][]byte, n),
		Off:  make([]int, n),
		Len:  make([]int, n),
		Meta: make([]uint64, n),
	}
}

// Cap is the maximum number of frames the batch holds.
func (b *Batch) Cap() int { return len(b.Buf) }

// Frame returns a view of frame i.
func (b *Batch) Frame(i int) []byte { return b.Buf[i][b.Off[i] : b.Off[i]+b.Len[i]] }

// Reset empties the batch (backends call it from Release).
func (b *Batch) Reset() {
	for i := 0; i < b.N; i++ {
		b.Buf[i] = nil
	}
	b.N = 0
}

// Split opens VM port queues (RolePort) on Port and uplink queues on
// Uplink. vswitchd uses it to run AF_XDP where it pays, on the NIC, while VM
// taps stay on AF_PACKET: a guest's frames may carry checksum and
// segmentation offload state (CHECKSUM_PARTIAL, GSO) that a packet socket
// receives in its virtio_net_hdr and an XSK never sees. This is how Open
// vSwitch pairs afxdp NIC ports with tap or vhost VM ports.
type Split struct {
	Port, Uplink Backend
}

// Name is the uplink backend's name: the datapath as users know it.
func (s Split) Name() string { return s.Uplink.Name() }

// PortName is the name of the backend VM ports use.
func (s Split) PortName() string { return s.Port.Name() }

// Open routes the queue to the backend for its role.
func (s Split) Open(ifname string, cfg QueueConfig) (Queue, error) {
	if cfg.Role == RolePort {
		return s.Port.Open(ifname, cfg)
	}
	return s.Uplink.Open(ifname, cfg)
}

// PortName is the name of the backend that opens VM port queues:
// b's PortName when it has one (Split), else b's Name.
func PortName(b Backend) string {
	if p, ok := b.(interface{ PortName() string }); ok {
		return p.PortName()
	}
	return b.Name()
}
