//go:build linux

package afxdp

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/rlimit"
	"github.com/vishvananda/netlink"
	"github.com/vswitch/vswitch/internal/rawsock"
	"github.com/vswitch/vswitch/internal/rxwait"
	"github.com/vswitch/vswitch/pkg/backend"
	"golang.org/x/sys/unix"
)

// ifKey names an interface across network namespaces: ifindexes are only
// unique within one namespace.
type ifKey struct {
	netns   uint64
	ifindex int
}

// sockKey names a socket: its interface, NIC queue and class (0 for the
// queue's own socket, more for those sharing its UMEM; see OpenQueue).
type sockKey struct {
	ifKey
	queue int
	class int
}

// Backend opens AF_XDP queues. It keeps a registry of the XDP programs it
// attached (one per interface, reference counted by receiving queues) and
// of its sockets (one per interface queue and class, shared by the Queues
// naming it).
type Backend struct {
	opts Options
	log  *slog.Logger

	mu     sync.Mutex
	progs  map[ifKey]*ifaceProg
	socks  map[sockKey]*xsk
	memErr error
	memSet bool

	// BTF ID of bpf_xdp_metadata_rx_vlan_tag, resolved on first attach.
	vlanKfunc    btf.TypeID
	vlanKfuncErr error
	vlanResolved bool
	// Interfaces already warned that out-of-band VLAN tags are lost.
	vlanWarned map[ifKey]bool

	// spreading counts the receiving queues that wait for frames on their
	// own thread (see internal/rxwait).
	spreading atomic.Int32
}

var _ backend.Backend = (*Backend)(nil)

// New returns an AF_XDP backend.
func New(opts Options) *Backend {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Backend{
		opts:  opts,
		log:   log.With("backend", "afxdp"),
		progs: make(map[ifKey]*ifaceProg),
		socks: make(map[sockKey]*xsk),

		vlanWarned: make(map[ifKey]bool),
	}
}

// Name implements backend.Backend.
func (b *Backend) Name() string { return "afxdp" }

// chunkSize picks the UMEM chunk for a frame size: received data starts
// XDP_PACKET_HEADROOM (256) bytes into the chunk.
func chunkSize(frameSize int) (uint64, error) {
	if frameSize <= 0 {
		frameSize = 1500 + 14 + 8 + 4 // MTU 1500, two tags, FCS slack
	}
	switch {
	case frameSize+unix.XDP_PACKET_HEADROOM <= 2048:
		return 2048, nil
	case frameSize+unix.XDP_PACKET_HEADROOM <= 4096:
		return 4096, nil
	}
	return 0, fmt.Errorf("frame size %d too large for AF_XDP without multi-buffer (max %d)", frameSize, 4096-unix.XDP_PACKET_HEADROOM)
}

// txLimit is the longest frame a device of this MTU transmits: the kernel
// forwards MTU + Ethernet header + one VLAN tag.
func txLimit(mtu int) int {
	if mtu <= 0 {
		return 1 << 30 // unknown: leave it to the chunk size
	}
	return mtu + 14 + 4
}

// Open implements backend.Backend. It works in the network namespace of
// the calling thread; the returned Queue may be used and closed from any
// goroutine.
func (b *Backend) Open(ifname string, cfg backend.QueueConfig) (backend.Queue, error) {
	q, err := b.OpenQueue(ifname, cfg)
	if err != nil {
		return nil, err
	}
	return q, nil
}

// OpenQueue is Open with the concrete type, for callers that want Info.
//
// Uplink queue IDs beyond the NIC's RX queue count (RXQueues, n) are
// welcome: QueueID i names NIC queue i % n. RoleUplinkTX transmits through
// that NIC queue's socket. RoleUplinkRX receives through the socket of
// class i / n on it: class 0 is the NIC queue's own socket, the others
// share its UMEM (XDP_SHARED_UMEM) and the XDP program gives each its
// share of the queue's frames by the CPU that received them (see
// ifaceProg.place). A veth uplink so gets a receiving socket per CPU (as
// vswitchd opens it), as AF_PACKET's fanout group does, and a frame is
// received by the poller of its CPU (internal/cpupoll) without a wake-up
// from another CPU.
//
// Opening a queue takes these steps, each a function below: raise
// RLIMIT_MEMLOCK (once per Backend), resolve the interface and NIC queue
// (resolveTarget), find the socket of that NIC queue or bind a new one
// (socketLocked), then make the Queue (newQueueLocked): hold promiscuous
// mode if asked and, for a receiving role, attach the interface's XDP
// program and insert the socket into its XSKMAP (attachRXLocked). A failed
// step undoes what the steps before it did.
func (b *Backend) OpenQueue(ifname string, cfg backend.QueueConfig) (*Queue, error) {
	runtime.LockOSThread() // netns, netlink and socket calls on one thread
	defer runtime.UnlockOSThread()
	b.raiseMemlock()

	t, err := resolveTarget(ifname, cfg)
	if err != nil {
		return nil, fmt.Errorf("open afxdp queue on %s: %w", ifname, err)
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	x, created, err := b.socketLocked(t)
	if err != nil {
		return nil, err
	}
	q, err := b.newQueueLocked(t, x)
	if err != nil {
		if created {
			b.discardLocked(x)
		}
		return nil, err
	}
	x.refs++
	if created {
		b.socks[t.key] = x
	}
	b.log.Debug("opened afxdp queue", "interface", ifname, "queue", t.key.queue, "class", t.key.class, "role", cfg.Role.String(),
		"zerocopy", x.zeroCopy, "frame", x.chunk)
	return q, nil
}

// queueTarget is what a queue to open is bound to, resolved from its
// interface name and QueueConfig.
type queueTarget struct {
	ifname  string
	key     sockKey // namespace, ifindex and NIC queue of the socket
	mtu     int
	chunk   uint64 // UMEM chunk size the frame size needs
	batch   int
	role    backend.Role
	receive bool // RolePort or RoleUplinkRX: the queue owns the socket's RX side
	promisc bool
	polled  bool // QueueConfig.Polled (receiving queues)
}

// resolveTarget looks up ifname in the calling thread's network namespace
// and works out the socket the queue needs. A port (a tap or veth) has one
// queue, 0; uplink queues bind cfg.QueueID.
func resolveTarget(ifname string, cfg backend.QueueConfig) (queueTarget, error) {
	t := queueTarget{
		ifname:  ifname,
		batch:   cfg.Batch,
		role:    cfg.Role,
		receive: cfg.Role == backend.RolePort || cfg.Role == backend.RoleUplinkRX,
		promisc: cfg.Promisc,
		polled:  cfg.Polled,
	}
	if t.batch <= 0 {
		t.batch = backend.DefaultBatch
	}
	var err error
	if t.chunk, err = chunkSize(cfg.FrameSize); err != nil {
		return t, err
	}
	nl, err := netlink.LinkByName(ifname)
	if err != nil {
		return t, err
	}
	ns, err := currentNetns()
	if err != nil {
		return t, err
	}
	if cfg.QueueID < 0 {
		return t, fmt.Errorf("queue %d: negative", cfg.QueueID)
	}
	t.key = sockKey{ifKey: ifKey{ns, nl.Attrs().Index}}
	if cfg.Role != backend.RolePort {
		n := rxQueues(ifname, nl)
		t.key.queue = cfg.QueueID % n
		if cfg.Role == backend.RoleUplinkRX {
			t.key.class = cfg.QueueID / n
		}
	}
	t.mtu = nl.Attrs().MTU
	return t, nil
}

// raiseMemlock lifts RLIMIT_MEMLOCK, once per Backend: kernels before 5.11
// charge BPF maps and locked UMEM pages to it. A failure is only logged;
// whatever then runs out of locked memory reports its own error.
func (b *Backend) raiseMemlock() {
	b.mu.Lock()
	if !b.memSet {
		b.memSet = true
		b.memErr = rlimit.RemoveMemlock()
	}
	err := b.memErr
	b.mu.Unlock()
	if err != nil {
		b.log.Debug("raising RLIMIT_MEMLOCK failed", "err", err)
	}
}

// socketLocked returns the socket registered for t.key, or binds a new one
// (created) when there is none. A registered socket must have chunks as
// large as t needs and, when t receives, no receiver yet.
//
// b.mu is held on entry and on return but not while binding: the kernel
// may keep a queue busy for a moment after a close, and openSocket waits
// that out. A concurrent Open of the same queue that wins the bind is
// joined instead.
func (b *Backend) socketLocked(t queueTarget) (*xsk, bool, error) {
	if t.key.class > 0 {
		return b.sharedSocketLocked(t)
	}
	var x *xsk
	created := false
	for x == nil {
		if x = b.socks[t.key]; x != nil {
			break
		}
		b.mu.Unlock()
		nx, err := b.openSocket(t.ifname, t.key.ifindex, t.key.queue, t.chunk, func() bool {
			b.mu.Lock()
			defer b.mu.Unlock()
			return b.socks[t.key] != nil
		})
		b.mu.Lock()
		switch {
		case err == nil && b.socks[t.key] == nil:
			x, created = nx, true
			x.key = t.key
		case err == nil:
			nx.teardown() // cannot bind twice; defensive
		case errors.Is(err, unix.EBUSY) && b.socks[t.key] != nil:
			// retry the loop: join the winner
		default:
			return nil, false, fmt.Errorf("open afxdp queue on %s: %w", t.ifname, err)
		}
	}
	if !created && x.chunk < t.chunk {
		return nil, false, fmt.Errorf("open afxdp queue on %s queue %d: socket already open with %d byte frames, %d needed", t.ifname, t.key.queue, x.chunk, t.chunk)
	}
	if !created && t.receive && x.rxOwner != nil {
		return nil, false, fmt.Errorf("open afxdp %s queue on %s queue %d: the queue already has a receiver (%s)", t.role, t.ifname, t.key.queue, x.rxOwner.role)
	}
	return x, created, nil
}

// sharedSocketLocked is socketLocked for a class > 0 socket: it shares the
// UMEM of the NIC queue's own socket (class 0), which it finds or binds
// and holds a reference on until it closes itself (discardLocked).
func (b *Backend) sharedSocketLocked(t queueTarget) (*xsk, bool, error) {
	// Class 0 first: it exists whenever the socket asked for does (which
	// holds a reference on it), so it is only bound here when neither is.
	pt := t
	pt.key.class, pt.receive = 0, false
	p, created, err := b.socketLocked(pt)
	if err != nil {
		return nil, false, err
	}
	if created {
		p.key = pt.key
		b.socks[pt.key] = p
	}
	if x := b.socks[t.key]; x != nil {
		// Open already (p was not created here then), perhaps by a
		// concurrent Open while socketLocked let go of b.mu.
		if t.receive && x.rxOwner != nil {
			return nil, false, fmt.Errorf("open afxdp %s queue on %s queue %d class %d: it already has a receiver", t.role, t.ifname, t.key.queue, t.key.class)
		}
		return x, false, nil
	}
	p.refs++
	x, err := openSharedXSK(p, t.key.class)
	if err != nil {
		b.unrefLocked(p)
		return nil, false, fmt.Errorf("open afxdp queue on %s: %w", t.ifname, err)
	}
	x.key = t.key
	return x, true, nil
}

// unrefLocked drops a reference on x; the last one unregisters and closes
// it (discardLocked). Caller holds b.mu.
func (b *Backend) unrefLocked(x *xsk) {
	x.refs--
	if x.refs > 0 {
		return
	}
	if b.socks[x.key] == x {
		delete(b.socks, x.key)
	}
	b.discardLocked(x)
}

// discardLocked closes a socket no Queue uses, and drops its reference on
// the socket whose UMEM it shares. Caller holds b.mu.
func (b *Backend) discardLocked(x *xsk) {
	mu := x.rxLock()
	mu.Lock()
	if x.shared != nil && !x.closed {
		// A redirect that was under way when the socket left the XSKMAP
		// may have landed since the receiver's drain: its chunks belong
		// to the pool, which lives on. (One still under way now is lost
		// to the pool: at most one receive pass, a NAPI budget of
		// chunks, per shared socket closed, out of rxFrames.)
		x.drainRXLocked()
	}
	x.txMu.Lock()
	x.teardown()
	x.txMu.Unlock()
	mu.Unlock()
	if x.shared != nil {
		b.unrefLocked(x.shared)
	}
}

// newQueueLocked makes the Queue for t on socket x: it holds the interface
// in promiscuous mode if asked and, for a receiving role, takes the
// socket's RX side (attachRXLocked). On failure it undoes its own steps and
// leaves x to the caller. Caller holds b.mu.
func (b *Backend) newQueueLocked(t queueTarget, x *xsk) (*Queue, error) {
	q := &Queue{x: x, role: t.role, batch: t.batch, b: b, maxTx: txLimit(t.mtu)}
	if t.promisc {
		sk, err := promiscSocket(t.key.ifindex)
		if err != nil {
			return nil, fmt.Errorf("open afxdp queue on %s: promiscuous mode: %w", t.ifname, err)
		}
		q.promiscSk = sk
	}
	if t.receive {
		if err := b.attachRXLocked(q, t); err != nil {
			if q.promiscSk != nil {
				q.promiscSk.Close()
			}
			return nil, fmt.Errorf("open afxdp queue on %s: %w", t.ifname, err)
		}
	}
	return q, nil
}

// attachRXLocked makes q the receiver of its socket: the interface's XDP
// program (attached by the first receiver, see programLocked) redirects
// the frames of t's NIC queue to the socket once it is in the XSKMAP, and
// an rxwait.Waiter puts Recv to sleep until frames come. Caller holds b.mu.
func (b *Backend) attachRXLocked(q *Queue, t queueTarget) error {
	x, queueID := q.x, t.key.queue
	// The waiter first: registering the socket with the netpoller polls
	// it, and in copy mode a poll drives transmission and counts
	// xsk_tx_ring_empty; that belongs before the base below.
	w, err := rxwait.New(x.fd, &b.spreading, b.opts.BusyPoll, x.ifname)
	if err != nil {
		return err
	}
	// A socket that lived on for its transmitters after an earlier
	// receiver closed has counted for that receiver: start from there
	// (read before the XSKMAP insert, while no frame can arrive).
	if st, err := x.stats(); err == nil {
		q.statsBase, q.lastStats = st, st
	}
	p, err := b.programLocked(t.ifname, t.key.ifKey)
	if err != nil {
		w.Close()
		w.Release()
		return err
	}
	if queueID >= p.queues {
		err = fmt.Errorf("queue %d: the interface had %d RX queues when its XDP program was attached", queueID, p.queues)
	} else {
		err = p.addSocket(x)
	}
	if err != nil {
		w.Close()
		w.Release()
		if p.refs == 0 {
			p.close()
			delete(b.progs, t.key.ifKey)
		}
		return fmt.Errorf("insert socket into XSKMAP: %w", err)
	}
	p.refs++
	q.prog = p
	q.wait = w
	if t.polled {
		w.SetPolled()
	}
	w.SetOnUnspread(q.noteSpread) // the steering hears at once, not at the next frame
	q.rxReady = q.ready           // one func value for the queue's life: waiting allocates nothing
	w.SetPeek(func() bool { return q.ready(0) })
	x.rxOwner = q
	q.rx = true
	return nil
}

// programLocked returns the XDP program attached to the interface, or
// attaches one (see attachProgram and the package doc). A new program also
// switches the interface's rx VLAN offload off unless the options keep it,
// and warns once per interface when it cannot restore VLAN tags the driver
// holds out of band. Caller holds b.mu.
func (b *Backend) programLocked(ifname string, key ifKey) (*ifaceProg, error) {
	if p := b.progs[key]; p != nil {
		return p, nil
	}
	id, kerr := b.vlanKfuncLocked()
	p, err := attachProgram(b.log, ifname, key.ifindex, b.opts.XDPMode, id, kerr)
	if err != nil {
		return nil, err
	}
	p.key = key
	b.progs[key] = p
	b.log.Info("attached XDP program", "interface", ifname, "mode", p.mode, "vlan_restore", p.vlanHint)
	if p.vlanErr != nil && !b.vlanWarned[key] {
		b.vlanWarned[key] = true
		b.log.Warn("XDP program cannot restore VLAN tags the driver holds out of band: such frames reach the datapath untagged (try `ethtool -K "+ifname+" rxvlan off`; for a veth, txvlan off on its peer)",
			"interface", ifname, "reason", p.vlanErr)
	}
	if !b.opts.keepRxVLANOffload {
		off, oerr := disableRxVLANOffload(ifname)
		switch {
		case off != nil:
			p.offload = off
			b.log.Info("switched off rx VLAN offload while AF_XDP receives (restored on detach)", "interface", ifname)
		case oerr != nil:
			b.log.Debug("cannot switch off rx VLAN offload", "interface", ifname, "err", oerr)
		}
	}
	return p, nil
}

// vlanKfuncLocked resolves bpf_xdp_metadata_rx_vlan_tag in the kernel's
// BTF once per Backend (parsing vmlinux BTF is not free). Caller holds b.mu.
func (b *Backend) vlanKfuncLocked() (btf.TypeID, error) {
	if b.opts.noVLANHint {
		return 0, errors.New("disabled by options")
	}
	if !b.vlanResolved {
		b.vlanResolved = true
		b.vlanKfunc, b.vlanKfuncErr = resolveVLANKfunc()
	}
	return b.vlanKfunc, b.vlanKfuncErr
}

// openSocket binds a new socket, zero-copy first when allowed.
//
// The kernel releases a closed socket's claim on its (device, queue) from
// a workqueue, so binding right after a Close (ours, or a crashed
// process's) can see EBUSY for a moment: retry for up to a second.
// registered reports whether another Open registered the queue meanwhile.
func (b *Backend) openSocket(ifname string, ifindex, queueID int, chunk uint64, registered func() bool) (*xsk, error) {
	deadline := time.Now().Add(time.Second)
	delay := time.Millisecond
	for {
		x, err := b.tryOpenSocket(ifname, ifindex, queueID, chunk)
		if err == nil || !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) || registered() {
			return x, err
		}
		time.Sleep(delay)
		if delay < 50*time.Millisecond {
			delay *= 2
		}
	}
}

func (b *Backend) tryOpenSocket(ifname string, ifindex, queueID int, chunk uint64) (*xsk, error) {
	if !b.opts.NoZeroCopy {
		x, err := openXSK(ifname, ifindex, queueID, chunk, unix.XDP_ZEROCOPY)
		if err == nil {
			return x, nil
		}
		if errors.Is(err, unix.EBUSY) {
			return nil, err
		}
		b.log.Debug("zero-copy bind failed, using copy mode", "interface", ifname, "queue", queueID, "err", err)
	}
	return openXSK(ifname, ifindex, queueID, chunk, unix.XDP_COPY)
}

// releaseProgLocked removes receiving queue q from the interface's
// steering and its socket from the XSKMAP, and detaches the program when
// no receiving queue is left. Caller holds b.mu and q's recvMu.
func (b *Backend) releaseProgLocked(p *ifaceProg, q *Queue) {
	if q.streaming {
		q.streaming = false
		p.noteStreaming(false)
	}
	if err := p.removeSocket(q.x); err != nil {
		b.log.Warn("afxdp: XSKMAP not updated for a closed queue: frames steered to it are lost until the next open or close on the queue", "interface", p.ifname, "err", err)
	}
	p.refs--
	if p.refs <= 0 {
		p.close()
		delete(b.progs, p.key)
		b.log.Info("detached XDP program", "interface", p.ifname)
	}
}

// closeQueue drops q's claims on its socket and program. Caller holds
// b.mu; q.closed is already set and no Recv runs on q.
func (b *Backend) closeQueueLocked(q *Queue) {
	x := q.x
	if q.prog != nil {
		b.releaseProgLocked(q.prog, q)
		q.prog = nil
	}
	if x.rxOwner == q {
		x.rxOwner = nil
		if x.refs > 1 || x.shared != nil {
			// The socket lives on for transmitters, or its chunks belong
			// to a fill ring that does: give frames still in the RX ring
			// back to the fill ring so they are not lost to it.
			mu := x.rxLock()
			mu.Lock()
			x.drainRXLocked()
			mu.Unlock()
		}
	}
	b.unrefLocked(x)
}

// promiscSocket holds the interface in promiscuous mode for as long as the
// returned socket is open: a packet socket with protocol 0 (it receives
// nothing) and a PACKET_MR_PROMISC membership. The kernel counts such
// memberships and drops them when the socket closes, crash included, so
// we never turn off promiscuity someone else asked for.
func promiscSocket(ifindex int) (*rawsock.Conn, error) {
	c, err := rawsock.Listen(ifindex, rawsock.Raw, 0, &rawsock.Config{Unpolled: true}) // nothing to wait for
	if err != nil {
		return nil, err
	}
	if err := c.SetPromiscuous(true); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// currentNetns identifies the calling thread's network namespace.
func currentNetns() (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return 0, fmt.Errorf("identify network namespace: %w", err)
	}
	return st.Ino, nil
}

// Probe reports whether AF_XDP can work on ifname in the calling thread's
// network namespace, and why not: the interface must exist, the kernel must
// offer AF_XDP sockets, the XDP program must pass the verifier, and a socket
// must bind to queue 0. It attaches nothing and leaves nothing behind.
// Queue 0 must be free, so probe before opening queues.
func Probe(ifname string) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := rlimit.RemoveMemlock(); err != nil {
		return fmt.Errorf("afxdp probe %s: raise RLIMIT_MEMLOCK: %w", ifname, err)
	}
	nl, err := netlink.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("afxdp probe %s: %w", ifname, err)
	}
	if nl.Attrs().Flags&net.FlagLoopback != 0 {
		return fmt.Errorf("afxdp probe %s: loopback interface", ifname)
	}
	if x := nl.Attrs().Xdp; x != nil && x.Attached {
		// Not fatal (stale programs are replaced), but worth knowing.
		slog.Debug("afxdp probe: interface already has an XDP program", "interface", ifname, "prog_id", x.ProgId)
	}
	xsks, state, cpus, err := newProgMaps(ifname, 1)
	if err != nil {
		return fmt.Errorf("afxdp probe %s: %w", ifname, err)
	}
	prog, err := loadProgram(ifname, progMaps{xsks: xsks.FD(), state: state.FD(), cpus: cpus}, nl.Attrs().Index, 0)
	xsks.Close()
	state.Close()
	if err != nil {
		return fmt.Errorf("afxdp probe %s: %w", ifname, err)
	}
	prog.Close()
	// The kernel frees a closed socket's queue binding in deferred work: a
	// daemon restarted right after a stop finds the queue busy for a while.
	x, err := openXSK(ifname, nl.Attrs().Index, 0, 2048, unix.XDP_COPY)
	for deadline := time.Now().Add(2 * time.Second); err != nil && errors.Is(err, unix.EBUSY) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		x, err = openXSK(ifname, nl.Attrs().Index, 0, 2048, unix.XDP_COPY)
	}
	if err != nil {
		if errors.Is(err, unix.EAFNOSUPPORT) {
			return fmt.Errorf("afxdp probe %s: kernel has no AF_XDP sockets: %w", ifname, err)
		}
		return fmt.Errorf("afxdp probe %s: %w", ifname, err)
	}
	x.teardown()
	return nil
}
