//go:build linux

package afpacket

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/vswitch/vswitch/internal/rawsock"
	"github.com/vswitch/vswitch/internal/rxwait"
	"github.com/vswitch/vswitch/pkg/backend"
	"golang.org/x/sys/unix"
)

// Ring defaults. A TPACKET_V2 ring is allocated in blocks of whole frame
// slots; a slot holds one frame of up to QueueConfig.FrameSize bytes after
// its header and headroom (2128 bytes for the default frame size). A
// 128 KiB block holds 61 slots, a 256 KiB one 123: 8 blocks of 256 KiB
// (2 MiB, 984 slots) per port queue and 32 blocks of 128 KiB (4 MiB, 1952
// slots) per uplink worker absorb a few milliseconds of line rate while the
// pipeline is busy.
const (
	DefaultBlockSize = 128 << 10
	// DefaultPortBlockSize is the block size of port queues. (With
	// TPACKET_V3 a GSO super-frame of up to 64 KiB had to fit a block; a
	// V2 ring takes super-frames through TP_STATUS_COPY instead, the size
	// stays for the same 2 MiB per port.)
	DefaultPortBlockSize = 256 << 10
	// DefaultPortBlocksGSO is the number of blocks of a port queue with
	// the default block size (2 MiB, as 16 blocks of 128 KiB).
	DefaultPortBlocksGSO = 8
	DefaultPortBlocks    = 16
	DefaultUplinkBlocks  = 32
	// DefaultBlockTimeout was the TPACKET_V3 block retire timeout.
	//
	// Deprecated: TPACKET_V2 rings hand over every frame at once; nothing
	// uses it.
	DefaultBlockTimeout = time.Millisecond
	defaultFrameSize    = 2048 - backend.Headroom
	maxTagBytes         = 8 // two tags (802.1ad S-tag + 802.1Q C-tag)
	rebuiltTagLen       = 4
	ringReserve         = backend.Headroom + rebuiltTagLen
	// pollTimeoutMillis bounds a wait in the netpoller (the jam watchdog's
	// safety net: a jammed ring wakes nobody): a parked Recv looks at its
	// ring again after 250 to 500 ms (see rxwait.Waiter.Park).
	pollTimeoutMillis = 500
	tpacketAlign      = unix.TPACKET_ALIGNMENT
	sizeofSockaddrLL  = 20
)

// Backend opens AF_PACKET queues. The zero value is ready to use; its fields
// override the ring geometry for every queue it opens.
type Backend struct {
	// BlockSize is the allocation unit of a TPACKET_V2 RX ring: a multiple
	// of the page size holding whole frame slots (default DefaultBlockSize,
	// DefaultPortBlockSize for RolePort; doubled until one slot fits).
	BlockSize int
	// Blocks is the number of blocks per RX ring (default DefaultPortBlocks
	// for RolePort with a BlockSize of its own, DefaultPortBlocksGSO with
	// the default one, DefaultUplinkBlocks for RoleUplinkRX).
	Blocks int
	// BlockTimeout was tp_retire_blk_tov of the TPACKET_V3 ring. It is
	// ignored: a TPACKET_V2 ring hands every frame over as soon as the
	// kernel has written it and wakes the reader per frame.
	BlockTimeout time.Duration
	// Logger receives open/close events (default slog.Default()).
	Logger *slog.Logger

	// BusyPoll, if not nil, is the busy poll the receiving queues join
	// (internal/rxwait.Group: one for the whole process, shared with the
	// other backend's queues).
	BusyPoll *rxwait.Group

	// spreading counts the receiving queues that wait for frames on their
	// own thread (see internal/rxwait).
	spreading atomic.Int32

	// steers are the polled uplinks' fanout groups (steer_linux.go).
	steerMu sync.Mutex
	steers  map[uint16]*steer
}

// New returns a Backend with default ring geometry.
func New() *Backend { return &Backend{} }

// Name implements backend.Backend.
func (b *Backend) Name() string { return "afpacket" }

var _ backend.Backend = (*Backend)(nil)
var _ backend.Queue = (*Queue)(nil)

// ErrRingHeld is returned (wrapped) by Recv when the ring has wrapped
// around onto a slot that holds a frame of a batch not yet released (or
// every segment slot is held): nothing can arrive until the caller
// releases a batch. Callers that hold several batches at once must
// release them and call Recv again.
var ErrRingHeld = errors.New("ring slots are held by unreleased batches")

// errBatchHeld is returned by Recv for a batch that is not empty.
var errBatchHeld = errors.New("batch not released or of capacity 0")

// errTxOnly is returned by Recv on a RoleUplinkTX queue.
var errTxOnly = errors.New("queue is transmit-only (RoleUplinkTX)")

// Queue is one AF_PACKET socket on one interface: an optional TPACKET_V2 RX
// ring and sendmmsg-based TX. See the package documentation.
type Queue struct {
	ifname  string
	ifindex int
	role    backend.Role
	log     *slog.Logger

	conn *rawsock.Conn // the packet socket
	fd   int           // its descriptor, for the ring and the hot path's system calls
	// waiter puts Recv to sleep: in the netpoller at light load, on its
	// own thread under load (nil for RoleUplinkTX). wake is its eventfd,
	// which Close writes to wake a Recv that polls on its own thread (-1
	// for RoleUplinkTX).
	waiter *rxwait.Waiter
	wake   int
	// parkFn is parkReady, made once so that parking allocates nothing;
	// parkWoke is its state (see park).
	parkFn   func(uintptr) bool
	parkWoke bool

	// life guards the file descriptors: every Recv/Send/Stats holds a read
	// lock for the duration of its system calls, Close takes the write lock
	// after setting closed and waking Recv, so no call ever uses a closed
	// (and possibly reused) descriptor.
	life   sync.RWMutex
	closed atomic.Bool

	rx *rxRing // nil for RoleUplinkTX
	// heldErr is Recv's ErrRingHeld error, made on first use (Recv's
	// goroutine only).
	heldErr error

	tx txPool

	// statistics
	rxPackets, rxBytes atomic.Uint64
	txPackets, txBytes atomic.Uint64
	txErrors           atomic.Uint64
	rxDroppedUser      atomic.Uint64 // truncated / oversize frames we dropped
	kstatMu            sync.Mutex
	kernelDrops        uint64 // accumulated tp_drops (the kernel resets the counters on read)

	// lastResyncLog is clock() of the last resync warning (Recv's
	// goroutine only).
	lastResyncLog time.Duration

	// polled: opened with QueueConfig.Polled (backend.Polled). rxCPU
	// tells which CPU received the last frame (port queues; nil when the
	// filter could not be attached, or not polled).
	polled bool
	rxCPU  *cpuNote
	// steer is a polled uplink queue's fanout group (nil: none, or
	// spread by CPU alone); steering says whether this queue counts as
	// streaming there. fanout is the group's id (0: none); back is the
	// Backend that opened the queue.
	steer    *steer
	steering bool
	fanout   uint16
	back     *Backend
}

// Open implements backend.Backend. It must be called from a goroutine whose
// thread is in the network namespace of ifname; the socket stays bound to
// that namespace afterwards and may be used from any goroutine.
func (b *Backend) Open(ifname string, cfg backend.QueueConfig) (backend.Queue, error) {
	q, err := b.open(ifname, cfg)
	if err != nil {
		return nil, err
	}
	return q, nil
}

// OpenQueue is Open returning the concrete type.
func (b *Backend) OpenQueue(ifname string, cfg backend.QueueConfig) (*Queue, error) {
	return b.open(ifname, cfg)
}

// open opens a queue in four steps: the socket (openSocket), its transmit
// side (setupTX), for receiving roles its ring (setupRX), and finally the
// binding that lets frames in, with fanout and promiscuity (start).
func (b *Backend) open(ifname string, cfg backend.QueueConfig) (_ *Queue, err error) {
	if cfg.Batch <= 0 {
		cfg.Batch = backend.DefaultBatch
	}
	if cfg.FrameSize <= 0 {
		cfg.FrameSize = defaultFrameSize
	}
	log := b.Logger
	if log == nil {
		log = slog.Default()
	}
	switch cfg.Role {
	case backend.RolePort, backend.RoleUplinkRX, backend.RoleUplinkTX:
	default:
		return nil, fmt.Errorf("afpacket: open %s: unknown role %d", ifname, cfg.Role)
	}

	q := &Queue{ifname: ifname, role: cfg.Role, log: log, fd: -1, wake: -1, back: b}
	defer func() {
		if err != nil {
			q.closeFDs()
			err = &OpError{Op: "open", Iface: ifname, Err: err}
		}
	}()
	if err := q.openSocket(); err != nil {
		return nil, err
	}
	// Port queues ask for a virtio_net_hdr per frame (GSO metadata for
	// segmentation); the socket then also expects one in front of every
	// frame it sends.
	vnet := cfg.Role == backend.RolePort
	if err := q.setupTX(cfg.Batch, vnet); err != nil {
		return nil, err
	}
	if cfg.Role != backend.RoleUplinkTX {
		if err := q.setupRX(b.geometry(cfg), cfg.FrameSize, vnet, &b.spreading, b.BusyPoll); err != nil {
			return nil, err
		}
	}
	if cfg.Polled && q.rx != nil {
		q.polled = true
		q.waiter.SetPolled()
		if cfg.Role == backend.RolePort {
			// Best effort: without it the port's poller stays where it
			// was put (a wake-up from another CPU, as without pollers).
			if q.rxCPU, err = attachCPUNote(q.fd); err != nil {
				log.Warn("afpacket: cannot tell which CPU receives a port's frames; its poller will not follow the VM", "iface", ifname, "err", err)
				err = nil
			}
		}
	}
	if err := q.start(cfg); err != nil {
		return nil, err
	}
	log.Debug("afpacket queue open", "iface", ifname, "ifindex", q.ifindex, "role", cfg.Role.String(),
		"fanout", cfg.FanoutGroup, "ring_bytes", q.ringBytes())
	return q, nil
}

// openSocket opens the queue's packet socket, bound to the interface (named
// in the calling thread's network namespace) with protocol 0: it receives
// nothing while it is configured, and a transmit-only socket stays deaf for
// good. The socket is blocking and left out of the Go netpoller (Recv
// waits through an rxwait.Waiter, see setupRX); q.fd is its descriptor
// for the ring and the system calls of the hot path, valid until Close.
func (q *Queue) openSocket() error {
	ifindex, err := rawsock.InterfaceIndex(q.ifname)
	if err != nil {
		return err
	}
	conn, err := rawsock.Listen(ifindex, rawsock.Raw, 0, &rawsock.Config{Unpolled: true})
	if err != nil {
		return err
	}
	q.conn, q.ifindex = conn, ifindex
	if err := conn.Control(func(fd int) error { q.fd = fd; return nil }); err != nil {
		return err
	}
	return nil
}

// setupTX prepares transmission: frames skip the qdisc layer (lower
// latency; they are also not looped back to packet sockets, ours or
// tcpdump's) and go out in sendmmsg batches of up to batch frames, each
// behind a virtio_net_hdr when vnet.
func (q *Queue) setupTX(batch int, vnet bool) error {
	if err := q.conn.SetQdiscBypass(true); err != nil {
		return err
	}
	q.tx.init(batch, vnet)
	return nil
}

// setupRX maps the TPACKET_V2 receive ring (PACKET_VNET_HDR first when
// vnet) for frames of up to frameSize bytes, hides what this host
// transmits on the interface from it (PACKET_IGNORE_OUTGOING): our own
// frames, an LLDPDU of the control plane included, must not come back in;
// and prepares the waiter Recv sleeps in (an epoll instance the netpoller
// watches and an eventfd: two descriptors).
func (q *Queue) setupRX(g ringGeometry, frameSize int, vnet bool, spreading *atomic.Int32, busy *rxwait.Group) error {
	err := q.conn.Control(func(fd int) error {
		var err error
		q.rx, err = newRxRing(fd, g, vnet)
		return err
	})
	if err != nil {
		return err
	}
	if err := q.conn.SetIgnoreOutgoing(true); err != nil {
		return err
	}
	w, err := rxwait.New(q.fd, spreading, busy, q.ifname)
	if err != nil {
		return err
	}
	q.waiter, q.wake = w, w.WakeFD()
	q.parkFn = q.parkReady
	w.SetPeek(q.rx.ready) // parkReady is not a mere look
	q.rx.maxFrame = frameSize
	if vnet {
		q.rx.initArena(frameSize, gsoSlots)
		// Only port queues can jam (PACKET_VNET_HDR) or use the receive
		// queue (TP_STATUS_COPY), and only they are in no fanout group,
		// so only they may be unbound for a rebuild or a resync.
		q.rx.rebuildable = true
		q.rx.fence = q.fence
	}
	return nil
}

// unbind stops delivery to the socket: bound with protocol 0 it receives
// nothing, and the kernel waits (synchronize_net) until no tpacket_rcv
// runs for it any more, so the ring and the receive queue hold still.
func (q *Queue) unbind() error {
	return q.conn.Bind(0)
}

// bindAll lets frames in (ETH_P_ALL). Binding to an interface that is down
// posts ENETDOWN on the socket; the kernel hooks the socket in again when
// it comes up. That error is read (and so cleared) here, so the next Recv
// does not report a state the caller already knows about.
func (q *Queue) bindAll() error {
	if err := q.conn.Bind(unix.ETH_P_ALL); err != nil {
		return err
	}
	if soerr, err := unix.GetsockoptInt(q.fd, unix.SOL_SOCKET, unix.SO_ERROR); err == nil && soerr != 0 {
		q.log.Debug("afpacket: interface not up at bind", "iface", q.ifname, "err", unix.Errno(soerr))
	}
	return nil
}

// fence is rxRing.fence: unbind (stop) or bind again.
func (q *Queue) fence(stop bool) error {
	if stop {
		return q.unbind()
	}
	return q.bindAll()
}

// start lets frames in: a receiving queue is bound to ETH_P_ALL, an uplink
// worker joins its fanout group, and cfg.Promisc takes a promiscuous
// membership.
func (q *Queue) start(cfg backend.QueueConfig) error {
	if q.rx != nil {
		if err := q.bindAll(); err != nil {
			return err
		}
	}
	if cfg.Role == backend.RoleUplinkRX && cfg.FanoutGroup != 0 {
		// HASH keeps a flow (and every fragment of a datagram: the flow
		// dissector hashes fragments on addresses only) on one worker, so
		// per-flow order is kept. No DEFRAG: a switch forwards fragments as
		// they are. The fanout group has its own prot hook, so the
		// per-socket PACKET_IGNORE_OUTGOING must be repeated as a flag.
		//
		// Polled queues: by the CPU that received the frame while no
		// queue streams, by flow while one does (steer_linux.go).
		if q.polled {
			if err := q.back.joinSteer(q, cfg.FanoutGroup); err != nil {
				return err
			}
			q.fanout = cfg.FanoutGroup
		} else if err := q.conn.SetFanout(cfg.FanoutGroup, unix.PACKET_FANOUT_HASH|unix.PACKET_FANOUT_FLAG_IGNORE_OUTGOING); err != nil {
			return err
		}
	}
	if cfg.Promisc {
		if err := q.conn.SetPromiscuous(true); err != nil {
			return err
		}
	}
	return nil
}

func (q *Queue) ringBytes() int {
	if q.rx == nil {
		return 0
	}
	return len(q.rx.mem)
}

func (b *Backend) geometry(cfg backend.QueueConfig) ringGeometry {
	g := ringGeometry{blockSize: b.BlockSize, blocks: b.Blocks}
	port := cfg.Role == backend.RolePort
	if g.blockSize <= 0 {
		g.blockSize = DefaultBlockSize
		if port {
			g.blockSize = DefaultPortBlockSize
			if g.blocks <= 0 {
				g.blocks = DefaultPortBlocksGSO
			}
		}
	}
	if g.blocks <= 0 {
		g.blocks = DefaultPortBlocks
		if cfg.Role == backend.RoleUplinkRX {
			g.blocks = DefaultUplinkBlocks
		}
	}
	// A slot holds the largest frame after the header, the reserve and
	// (port queues) the virtio_net_hdr; a block holds at least one slot.
	g.frameSize = ringSlotSize(cfg.FrameSize, port)
	for g.blockSize < g.frameSize {
		g.blockSize *= 2
	}
	return g
}

// enter registers an in-flight call; it fails once the queue is closed.
func (q *Queue) enter() bool {
	q.life.RLock()
	if q.closed.Load() {
		q.life.RUnlock()
		return false
	}
	return true
}

func (q *Queue) exit() { q.life.RUnlock() }

// Recv implements backend.Queue. b must be empty (new or Released). The
// frames are views into the ring, valid until Release. Recv and Release must
// be called from one goroutine (or otherwise serialised).
func (q *Queue) Recv(b *backend.Batch) (int, error) {
	if !q.enter() {
		return 0, backend.ErrClosed
	}
	defer q.exit()
	if err := q.canRecv(b); err != nil {
		return 0, err
	}
	for {
		if q.rx.dead != nil {
			return 0, &OpError{Op: "recv", Iface: q.ifname, Err: q.rx.dead}
		}
		if n := q.take(b); n > 0 {
			return n, nil
		}
		if err := q.wait(); err != nil {
			return 0, err
		}
	}
}

// canRecv is Recv's and TryRecv's check of the queue and the batch.
func (q *Queue) canRecv(b *backend.Batch) error {
	if q.rx == nil {
		return &OpError{Op: "recv", Iface: q.ifname, Err: errTxOnly}
	}
	if b.N != 0 || b.Cap() == 0 {
		return &OpError{Op: "recv", Iface: q.ifname, Err: errBatchHeld}
	}
	return nil
}

// take reads what the ring has into b and counts it.
func (q *Queue) take(b *backend.Batch) int {
	n, nbytes, dropped := q.rx.fill(b)
	if dropped != 0 {
		q.rxDroppedUser.Add(uint64(dropped))
		if q.rx.copyNote {
			q.rx.copyNote = false
			q.noteResync("a TP_STATUS_COPY slot's frame was missing from the receive queue or not its own; restarted both, dropping the super-frames in flight")
		}
	}
	if n > 0 {
		q.waiter.Received(n)
		q.noteSpread()
		q.rx.nap = q.waiter.Busy()
		q.rxPackets.Add(uint64(n))
		q.rxBytes.Add(uint64(nbytes))
	}
	return n
}

// wait blocks until the ring may have a frame for us, the queue is closed
// or the socket reports an error. It follows NAPI's rule (poll while there
// is work, sleep on a per-frame wake-up when idle; right after work, the
// process's busy poll, rxwait.Group, may spin up to --busy-poll first),
// and it sleeps in one of two ways (internal/rxwait says why):
//
//   - In the Go runtime's netpoller (park), the default: the goroutine
//     holds no thread and no P while it sleeps, and the thread the socket
//     wakes runs it. A frame that crosses the switch is then handed from
//     the egress worker to the ingress worker on one thread, without a
//     wake-up: the egress worker's sendmmsg on the uplink runs the kernel's
//     bridge and puts the reflected frame in the uplink's ring before it
//     parks, and its thread finds the ingress worker ready on its way back
//     to sleep.
//   - Under load, after a Recv returned a backlog (rxwait.SpreadBatch
//     frames), on the goroutine's own thread in ppoll (sleep), so that the
//     workers run on both CPUs, until a poll sees nothing for
//     rxwait.SpreadIdle. There, while traffic is flowing, the first empty
//     wait after a batch naps rxNap before it re-arms the per-frame
//     wake-up (interrupt moderation, see rxNap); an isolated frame is
//     never delayed by it.
//
// A TPACKET_V2 socket wakes its waiters (sk_data_ready) for every frame
// it writes, and poll says readable when the slot before the kernel's
// head is not TP_STATUS_KERNEL. Normally that slot is one we have not read
// yet. But if the caller still holds the frame in that slot (it keeps
// batches while calling Recv again), poll stays readable with nothing new
// to read. The netpoller is edge-triggered and only wakes on the next
// frame; a level-triggered ppoll would spin, so on its own thread wait
// then arms an edge-triggered epoll on the socket, which returns on the
// next frame's wake-up only, until the ring has a frame again; disarming
// afterwards keeps the kernel from running our epoll callback for every
// frame while we are busy.
func (q *Queue) wait() error {
	r := q.rx
	fds := &r.pollfds
	fds[0] = unix.PollFd{Fd: int32(q.wake), Events: unix.POLLIN}
	fds[1] = unix.PollFd{Fd: int32(q.fd), Events: unix.POLLIN | unix.POLLERR}
	defer r.disarmEdge(q.fd)
	for {
		if q.closed.Load() {
			return backend.ErrClosed
		}
		if r.ready() {
			return nil
		}
		if err := r.takeSockErr(); err != nil {
			return &OpError{Op: "recv", Iface: q.ifname, Err: err}
		}
		if r.pending() || r.wrapped() {
			// A super-frame waits for segment slots, or the cursor
			// reached a slot whose frame is still held: only Release
			// (by this same goroutine) can free them.
			if q.heldErr == nil { // built once: a caller may hit it often
				q.heldErr = &OpError{Op: "recv", Iface: q.ifname, Err: ErrRingHeld}
			}
			return q.heldErr
		}
		// Nothing to read: is the ring stuck? (At most every
		// watchInterval; it may move the cursor or rebuild the ring.)
		if err := q.watch(); err != nil {
			return err
		}
		if r.ready() {
			return nil
		}
		var (
			woke bool
			re   int16
			err  error
		)
		if q.waiter.Spread() {
			if r.nap {
				// Traffic is flowing: let frames gather instead of
				// being woken for each (see rxNap).
				r.nap = false
				if q.nap() {
					return backend.ErrClosed
				}
				continue
			}
			var idle bool
			woke, re, idle, err = q.sleep()
			if idle && !r.ready() {
				q.waiter.Unspread() // nothing for SpreadIdle: back to the netpoller
				q.noteSpread()
			}
		} else if q.polled {
			// The stream is over: back to the caller's poll loop, after
			// a look at the socket's error (the loop reads none).
			return q.idle()
		} else {
			r.nap = false // the netpoller batches by itself: no nap
			woke, re, err = q.park()
		}
		if err != nil {
			return err
		}
		if woke || q.closed.Load() {
			return backend.ErrClosed
		}
		if re&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0 {
			// Frames already in the ring come first; the error stays
			// pending until we read it.
			if r.ready() {
				return nil
			}
			soerr, err := unix.GetsockoptInt(q.fd, unix.SOL_SOCKET, unix.SO_ERROR)
			if err != nil {
				return &OpError{Op: "recv", Iface: q.ifname, Err: err}
			}
			if soerr != 0 {
				return &OpError{Op: "recv", Iface: q.ifname, Err: unix.Errno(soerr)}
			}
			if re&(unix.POLLHUP|unix.POLLNVAL) != 0 {
				return &OpError{Op: "recv", Iface: q.ifname, Err: unix.ENETDOWN}
			}
		}
		if re&unix.POLLIN != 0 && !r.armed && !r.ready() {
			// Readable, but only because of a frame we hold.
			if err := r.armEdge(q.fd, q.wake); err != nil {
				return &OpError{Op: "poll", Iface: q.ifname, Err: err}
			}
		}
	}
}

// park sleeps once in the netpoller: until the socket's next wake-up,
// Close (woke), or at most pollTimeoutMillis (the jam watchdog's safety
// net: a jammed ring wakes nobody). A wake-up without a frame (the frame
// was read before we parked, a dropped frame, an error) is sorted out by
// a zero-timeout poll of the socket, which reports its error bits in re;
// never POLLIN, which the netpoller needs no help with.
func (q *Queue) park() (woke bool, re int16, err error) {
	r := q.rx
	q.parkWoke = false
	switch err := q.waiter.Park(q.parkFn, pollTimeoutMillis*time.Millisecond); err {
	case nil:
	case rxwait.ErrTimeout:
		return false, 0, nil
	case rxwait.ErrClosed:
		return true, 0, nil
	default:
		return false, 0, &OpError{Op: "poll", Iface: q.ifname, Err: err}
	}
	if q.closed.Load() || r.ready() {
		return false, 0, nil
	}
	fds := &r.pollfds
	r.tsArg = unix.Timespec{}
	// Zero timeout: it never blocks, a raw system call (see txScratch.send).
	_, _, e := unix.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&fds[0])), uintptr(len(fds)),
		uintptr(unsafe.Pointer(&r.tsArg)), 0, 0, 0)
	if e != 0 {
		if e == unix.EINTR {
			return false, 0, nil
		}
		return false, 0, &OpError{Op: "poll", Iface: q.ifname, Err: e}
	}
	return fds[0].Revents != 0, fds[1].Revents &^ unix.POLLIN, nil
}

// idle is wait's end for a polled queue with nothing to read: the
// socket's pending error, if any (a zero-timeout poll, as park's), else
// backend.ErrIdle.
func (q *Queue) idle() error {
	if err := q.sockError(); err != nil {
		return err
	}
	return backend.ErrIdle
}

// sockError reports the socket's pending error (SO_ERROR after a
// zero-timeout poll saw POLLERR; ENETDOWN for POLLHUP), nil when none.
func (q *Queue) sockError() error {
	r := q.rx
	fds := &r.pollfds
	fds[1] = unix.PollFd{Fd: int32(q.fd), Events: unix.POLLIN | unix.POLLERR}
	fds[1].Revents = 0
	r.tsArg = unix.Timespec{}
	_, _, e := unix.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&fds[1])), 1, uintptr(unsafe.Pointer(&r.tsArg)), 0, 0, 0)
	if e != 0 || fds[1].Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) == 0 {
		return nil
	}
	soerr, err := unix.GetsockoptInt(q.fd, unix.SOL_SOCKET, unix.SO_ERROR)
	switch {
	case err != nil:
		return &OpError{Op: "recv", Iface: q.ifname, Err: err}
	case soerr != 0:
		return &OpError{Op: "recv", Iface: q.ifname, Err: unix.Errno(soerr)}
	case fds[1].Revents&(unix.POLLHUP|unix.POLLNVAL) != 0:
		return &OpError{Op: "recv", Iface: q.ifname, Err: unix.ENETDOWN}
	}
	return nil
}

// parkReady is park's check, called by the netpoller before it parks the
// goroutine and again after each wake-up: frames in the ring (or Close)
// the first time; after a wake-up, yes whatever it was, so that wait
// looks (errors, the watchdog) before it sleeps again.
func (q *Queue) parkReady(uintptr) bool {
	if q.parkWoke {
		return true
	}
	q.parkWoke = true
	return q.closed.Load() || q.rx.ready()
}

// nap sleeps rxNap on the eventfd alone, so frames arriving meanwhile do
// not wake us one by one; it reports whether Close woke it.
func (q *Queue) nap() bool {
	r := q.rx
	r.tsArg = unix.NsecToTimespec(int64(rxNap))
	_, _, e := unix.Syscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&r.pollfds[0])), 1,
		uintptr(unsafe.Pointer(&r.tsArg)), 0, 0, 0)
	return e == 0 && r.pollfds[0].Revents != 0
}

// sleep waits once on the goroutine's own thread, up to rxwait.SpreadIdle:
// on ppoll (level-triggered) or, once armed, on the edge-triggered epoll
// set. It reports whether the eventfd woke it, the socket's events (POLL*
// bits; EPOLL* has the same values) and whether it timed out (idle). It
// first goes through the Go scheduler when the goroutine has not for a
// while (rxwait.Waiter.Yield).
func (q *Queue) sleep() (woke bool, re int16, idle bool, err error) {
	r := q.rx
	q.waiter.Yield()
	if r.armed {
		n, err := unix.EpollWait(r.epfd, r.events[:], int(rxwait.SpreadIdle/time.Millisecond))
		if err != nil {
			if err == unix.EINTR {
				return false, 0, false, nil
			}
			return false, 0, false, &OpError{Op: "poll", Iface: q.ifname, Err: err}
		}
		for _, ev := range r.events[:n] {
			if int(ev.Fd) == q.wake {
				woke = true
			} else {
				re |= int16(ev.Events)
			}
		}
		return woke, re, n == 0, nil
	}
	fds := &r.pollfds
	fds[0].Revents, fds[1].Revents = 0, 0
	r.tsArg = r.pollTimeout
	// ppoll by hand: unix.Poll allocates its timeout.
	n, _, e := unix.Syscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&fds[0])), uintptr(len(fds)),
		uintptr(unsafe.Pointer(&r.tsArg)), 0, 0, 0)
	if e != 0 {
		if e == unix.EINTR {
			return false, 0, false, nil
		}
		return false, 0, false, &OpError{Op: "poll", Iface: q.ifname, Err: e}
	}
	return fds[0].Revents != 0, fds[1].Revents, n == 0, nil
}

// Release implements backend.Queue: the ring slots of b's frames go back
// to the kernel, in whatever order batches are released.
func (q *Queue) Release(b *backend.Batch) {
	if b.N == 0 {
		b.Reset()
		return
	}
	if q.rx != nil {
		q.rx.release(b)
		if q.closed.Load() {
			q.rx.maybeUnmap()
		}
	}
	b.Reset()
}

// Send implements backend.Queue. It never blocks: frames the kernel cannot
// take right now (EAGAIN, ENOBUFS) or at all (EMSGSIZE: larger than the MTU
// allows) are counted in TxErrors and skipped. Errors saying the interface
// is gone or down are returned.
func (q *Queue) Send(frames [][]byte) (int, error) {
	if len(frames) == 0 {
		return 0, nil
	}
	if !q.enter() {
		return 0, backend.ErrClosed
	}
	s := q.tx.get()
	sent, nbytes, errs, err := s.send(q.fd, frames)
	q.tx.put(s)
	q.exit()
	if sent > 0 {
		q.txPackets.Add(uint64(sent))
		q.txBytes.Add(uint64(nbytes))
	}
	if errs > 0 {
		q.txErrors.Add(uint64(errs))
	}
	if err != nil {
		return sent, &OpError{Op: "send", Iface: q.ifname, Err: err}
	}
	return sent, nil
}

// Stats implements backend.Queue. RxDropped is the kernel's count of
// frames lost to a full ring (PACKET_STATISTICS tp_drops), RxOversize ours
// of frames too long, truncated or unsegmentable.
func (q *Queue) Stats() backend.QueueStats {
	kd := q.kernelStats()
	return backend.QueueStats{
		RxPackets:  q.rxPackets.Load(),
		RxBytes:    q.rxBytes.Load(),
		TxPackets:  q.txPackets.Load(),
		TxBytes:    q.txBytes.Load(),
		RxDropped:  kd,
		RxOversize: q.rxDroppedUser.Load(),
		TxErrors:   q.txErrors.Load(),
	}
}

// Close implements backend.Queue. It wakes a blocked Recv, waits for
// in-flight Recv/Send calls to leave, then closes the socket. The ring stays
// mapped until the last received batch is Released, so views handed out
// before Close never point to unmapped memory.
func (q *Queue) Close() error {
	if q.closed.Swap(true) {
		return nil
	}
	if q.waiter != nil {
		// Wakes a Recv in the netpoller (and waits for it to leave
		// there) or in ppoll on its own thread (the eventfd).
		_ = q.waiter.Close()
	}
	// kstatMu before life, as in kernelStats. The last PACKET_STATISTICS
	// read makes the counters final: what the kernel counted since the
	// previous Stats would go with the socket.
	q.kstatMu.Lock()
	q.life.Lock()
	if q.rx != nil {
		q.addKernelStatsLocked()
	}
	q.closeFDs()
	q.life.Unlock()
	q.kstatMu.Unlock()
	if q.rx != nil {
		q.rx.maybeUnmap()
	}
	q.log.Debug("afpacket queue closed", "iface", q.ifname, "role", q.role.String())
	return nil
}

func (q *Queue) closeFDs() {
	if q.fanout != 0 {
		q.back.leaveSteer(q, q.fanout)
		q.fanout = 0
	}
	if q.conn != nil {
		_ = q.conn.Close()
		q.fd = -1
	}
	q.rxCPU.close()
	if q.waiter != nil {
		if !q.waiter.Closed() {
			_ = q.waiter.Close() // failed open
		}
		q.waiter.Release()
		q.wake = -1
	}
	if q.rx != nil {
		q.rx.closeEdge()
	}
	if q.closed.Load() || q.rx == nil {
		return
	}
	// Failed open: nobody holds views yet.
	q.rx.unmap()
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// OpError is the error type returned by Open, Recv and Send, in the style of
// net.OpError.
type OpError struct {
	Op    string // "open", "recv", "poll", "send"
	Iface string
	Err   error
}

func (e *OpError) Error() string {
	return "afpacket: " + e.Op + " " + e.Iface + ": " + e.Err.Error()
}

func (e *OpError) Unwrap() error { return e.Err }
