//go:build linux

package afxdp

import (
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/vswitch/vswitch/internal/rawsock"
	"github.com/vswitch/vswitch/internal/rxwait"
	"github.com/vswitch/vswitch/pkg/backend"
	"golang.org/x/sys/unix"
)

// Queue is one AF_XDP queue (implements backend.Queue). Receiving roles own
// the RX side of their socket; every role may transmit through it.
type Queue struct {
	b     *Backend
	x     *xsk
	prog  *ifaceProg // non-nil for receiving queues until Close
	role  backend.Role
	batch int

	maxTx     int            // longest frame the interface transmits (MTU + Ethernet header + one tag)
	rx        bool           // owns the socket's RX side
	promiscSk *rawsock.Conn  // packet socket holding a promiscuous membership, or nil
	wait      *rxwait.Waiter // puts Recv to sleep (receiving queues)
	rxReady   func(uintptr) bool
	streaming bool // counted in prog's steering (noteSpread); under x.recvMu
	// Recv's interrupt moderation (nap); under x.recvMu.
	napped bool
	naps   atomic.Int32 // naps taken (tests)
	napFD  [1]unix.PollFd
	napTS  unix.Timespec

	closed atomic.Bool

	rxPackets, rxBytes atomic.Uint64
	txPackets, txBytes atomic.Uint64
	txErrors           atomic.Uint64
	// Receiving queues: the socket's XDP_STATISTICS as last read, and as
	// they were when the queue became the receiver (see socketStats).
	// Guarded by x.txMu.
	lastStats, statsBase unix.XDPStatistics
}

var _ backend.Queue = (*Queue)(nil)

// Info describes how a queue ended up configured.
type Info struct {
	Interface string
	QueueID   int // the NIC queue
	// Class is the socket's among those receiving the NIC queue: 0 for
	// its own socket, more for those sharing its UMEM (Backend.OpenQueue).
	Class int
	Role  backend.Role
	// XDPMode is "native" or "generic" for receiving queues, "" for
	// transmit-only queues (they need no program).
	XDPMode string
	// VLANRestore: the XDP program puts back VLAN tags the driver holds
	// out of band (see the package doc). False for transmit-only queues
	// and where only the plain program could be used.
	VLANRestore bool
	ZeroCopy    bool
	// FrameSize is the UMEM chunk size (2048 or 4096).
	FrameSize int
}

// Info reports the queue's mode.
func (q *Queue) Info() Info {
	in := Info{Interface: q.x.ifname, QueueID: q.x.queueID, Class: q.x.class, Role: q.role, ZeroCopy: q.x.zeroCopy, FrameSize: int(q.x.chunk)}
	q.b.mu.Lock()
	if q.prog != nil {
		in.XDPMode = q.prog.mode
		in.VLANRestore = q.prog.vlanHint
	}
	q.b.mu.Unlock()
	return in
}

func (q *Queue) receives() bool { return q.rx }

// Recv implements backend.Queue. Frames are views into the UMEM: Buf[i] is
// the whole chunk, the frame starts at Off[i] (the kernel's XDP headroom,
// 256 bytes in, less 4 in zero-copy mode when the program re-inserted a
// VLAN tag) and Meta[i] is the chunk's UMEM address.
func (q *Queue) Recv(b *backend.Batch) (int, error) {
	if err := q.canRecv(b); err != nil {
		return 0, err
	}
	x := q.x
	x.recvMu.Lock()
	defer x.recvMu.Unlock()
	for {
		if q.closed.Load() {
			return 0, backend.ErrClosed
		}
		if n := q.takeLocked(b); n > 0 {
			q.napped = false
			return n, nil
		}
		if q.role == backend.RolePort && !q.napped && q.wait.Spread() && q.wait.Busy() {
			q.napped = true
			q.nap()
			continue
		}
		// Nothing ready: sleep until the socket wakes us (see rxwait).
		if err := q.wait.Wait(q.rxReady); err != nil {
			switch {
			case err == rxwait.ErrClosed || q.closed.Load():
				return 0, backend.ErrClosed
			case err == rxwait.ErrIdle:
				return 0, backend.ErrIdle
			}
			return 0, fmt.Errorf("afxdp wait on %s queue %d: %w", x.ifname, x.queueID, err)
		}
	}
}

// rxNap is how long Recv naps while frames stream (nap).
const rxNap = 50 * time.Microsecond

// nap is NAPI's interrupt moderation (napi_defer_hard_irqs,
// gro_flush_timeout), as pkg/afpacket has it: while frames stream (the
// queue waits on its own thread and its last batch came less than
// rxwait.BusyGap after the one before), an empty Recv first sleeps rxNap
// on the waiter's eventfd alone (Close wakes it) and takes what gathered,
// rather than being woken by the socket for every frame or two. Each such
// wake-up is a context switch here and a try_to_wake_up, an IPI under a
// hypervisor, in the sender's time: through a VM port that is the VM's
// vCPU (the XDP program runs in its transmit). Measured, afxdp-xsk under
// the benchmark's load (4 interleaved runs each): the stream reached 81-86
// of its 120 kpps target without, 122-129 with; load p99 0.8-1.5 ms ->
// 0.57-0.98 ms; vm->vm 64 B +10 %. An isolated frame never waits for a nap.
// Ports only: an uplink queue's frames are hairpinned in vswitchd's own
// transmit, not a VM's, and napping there halved the tap topology's
// vm->vm rate (afxdp-tap 178-195 -> 99-126 kpps; ports only: 189-190).
func (q *Queue) nap() {
	q.naps.Add(1)
	q.napFD[0] = unix.PollFd{Fd: int32(q.wait.WakeFD()), Events: unix.POLLIN}
	q.napTS = unix.NsecToTimespec(int64(rxNap))
	_, _, _ = unix.Syscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&q.napFD[0])), 1,
		uintptr(unsafe.Pointer(&q.napTS)), 0, 0, 0)
}

// canRecv is Recv's and TryRecv's check of the queue and the batch.
func (q *Queue) canRecv(b *backend.Batch) error {
	if !q.receives() {
		return fmt.Errorf("afxdp %s queue on %s: receive on a transmit-only queue", q.role, q.x.ifname)
	}
	if b.N != 0 || b.Cap() == 0 {
		// Receiving into an unreleased batch would leak its UMEM chunks.
		return fmt.Errorf("afxdp recv on %s queue %d: batch not released or of capacity 0", q.x.ifname, q.x.queueID)
	}
	return nil
}

// takeLocked reads what the RX ring has into b and counts it; the caller
// holds x.recvMu.
func (q *Queue) takeLocked(b *backend.Batch) int {
	x := q.x
	max := min(b.Cap(), q.batch)
	mu := x.rxLock()
	mu.Lock()
	n := x.recvLocked(b.Buf[:max], b.Off[:max], b.Len[:max], b.Meta[:max])
	if n == 0 {
		// About to sleep: a zero-copy driver that ran out of fill
		// ring entries waits for a kick before it receives again.
		x.pool().wakeRXLocked()
	}
	mu.Unlock()
	if n == 0 {
		return 0
	}
	b.N = n
	var bytes uint64
	for i := 0; i < n; i++ {
		bytes += uint64(b.Len[i])
	}
	q.rxPackets.Add(uint64(n))
	q.rxBytes.Add(bytes)
	q.wait.Received(n)
	q.noteSpread()
	return n
}

// noteSpread tells the interface's steering (ifaceProg.noteStreaming)
// when q starts or stops waiting on its own thread: after Received, and
// from the waiter's Unspread. Caller holds x.recvMu, and q is open.
func (q *Queue) noteSpread() {
	if on := q.wait.Spread(); on != q.streaming && q.prog != nil {
		q.streaming = on
		q.prog.noteStreaming(on)
	}
}

// The backend.Polled side of a receiving queue opened with
// QueueConfig.Polled.
var _ backend.Polled = (*Queue)(nil)

// PollFD implements backend.Polled: the XSK, readable when its RX ring has
// frames.
func (q *Queue) PollFD() int { return q.x.fd }

// TryRecv implements backend.Polled: Recv without the wait.
func (q *Queue) TryRecv(b *backend.Batch) (int, error) {
	if err := q.canRecv(b); err != nil {
		return 0, err
	}
	x := q.x
	// Never waits: while the pollers own the queue only Close takes
	// recvMu (for the program's detach, milliseconds), and a poller's
	// locked thread that blocked would hand its P to a new thread.
	if !x.recvMu.TryLock() {
		if q.closed.Load() {
			return 0, backend.ErrClosed
		}
		return 0, nil // an earlier receiver of the socket still closing
	}
	defer x.recvMu.Unlock()
	if q.closed.Load() {
		return 0, backend.ErrClosed
	}
	return q.takeLocked(b), nil
}

// Streaming implements backend.Polled: the waiter moved the queue to its
// own thread (rxwait's spread).
func (q *Queue) Streaming() bool { return q.wait != nil && q.wait.Spread() }

// IncomingCPU implements backend.Polled: the CPU that received the last
// frame of the queue's NIC queue, as the XDP program noted it (-1 before
// the first, and once closed). For a port that is where its VM's thread
// runs. An uplink NIC queue's sockets all have the one note.
func (q *Queue) IncomingCPU() int {
	x := q.x
	// Close holds recvMu while the program (and its note) may go; a
	// caller never waits for it (TryRecv says why): unknown then.
	if !x.recvMu.TryLock() {
		return -1
	}
	defer x.recvMu.Unlock()
	if q.closed.Load() || q.prog == nil {
		return -1
	}
	return q.prog.incomingCPU(x.queueID)
}

// ready is the waiter's re-check: frames in the RX ring, or Close. Only
// the goroutine in Recv (holding recvMu) consumes the RX ring, so it may
// read the ring's consumer index without rxMu.
func (q *Queue) ready(uintptr) bool {
	return q.closed.Load() || q.x.rx.peek()
}

// Release implements backend.Queue: the batch's chunks go back to the fill
// ring (or, after Close, the UMEM is freed with the last of them).
func (q *Queue) Release(b *backend.Batch) {
	if b.N == 0 {
		return
	}
	p := q.x.pool()
	p.rxMu.Lock()
	p.releaseLocked(b.Meta[:b.N])
	p.wakeRXLocked()
	p.rxMu.Unlock()
	b.Reset()
}

// Send implements backend.Queue: frames are copied into free TX chunks and
// submitted as one batch; the kernel is kicked when the TX ring asks for it
// (always, in copy mode). Frames that do not fit a chunk, or find no free
// chunk, are not sent and count as TxErrors.
func (q *Queue) Send(frames [][]byte) (int, error) {
	if q.closed.Load() {
		return 0, backend.ErrClosed
	}
	x := q.x.pool() // a socket sharing a UMEM transmits through its pool's
	x.txMu.Lock()
	if x.closed {
		x.txMu.Unlock()
		return 0, backend.ErrClosed
	}
	x.reapLocked()
	want := uint32(len(frames))
	room := x.tx.prodFree(want)
	if uint32(len(x.txFree)) < room {
		room = uint32(len(x.txFree))
	}
	if room < want && x.tx.pending() > 0 {
		x.kickLocked()
		x.reapLocked()
		room = x.tx.prodFree(want)
		if uint32(len(x.txFree)) < room {
			room = uint32(len(x.txFree))
		}
	}
	var sent, bad uint32
	var bytes uint64
	free := x.txFree
	for _, f := range frames {
		if sent == room {
			break
		}
		// The kernel drops what the device cannot carry without telling
		// us: count those here, as afpacket does (EMSGSIZE).
		if uint64(len(f)) > x.chunk || len(f) == 0 || len(f) > q.maxTx {
			bad++
			continue
		}
		addr := free[len(free)-1]
		free = free[:len(free)-1]
		copy(x.umem[addr:addr+x.chunk], f)
		d := &x.tx.descs[(x.tx.local+sent)&x.tx.mask]
		d.Addr, d.Len, d.Options = addr, uint32(len(f)), 0
		sent++
		bytes += uint64(len(f))
	}
	x.txFree = free
	var errno unix.Errno
	if sent > 0 {
		x.tx.prodSubmit(sent)
		if x.tx.needWakeup() {
			errno = x.kickLocked()
		}
	}
	x.txMu.Unlock()

	q.txPackets.Add(uint64(sent))
	q.txBytes.Add(bytes)
	if dropped := uint64(len(frames)) - uint64(sent); dropped > 0 {
		q.txErrors.Add(dropped)
	}
	_ = bad
	if errno != 0 && errno != unix.EAGAIN && errno != unix.ENOBUFS {
		return int(sent), fmt.Errorf("afxdp send on %s queue %d: %w", x.ifname, x.queueID, errno)
	}
	return int(sent), nil
}

// Stats implements backend.Queue. RxDropped and RxOversize are the
// kernel's counts for the socket (see rxDrops), reported by the receiving
// queue only.
func (q *Queue) Stats() backend.QueueStats {
	s := backend.QueueStats{
		RxPackets: q.rxPackets.Load(),
		RxBytes:   q.rxBytes.Load(),
		TxPackets: q.txPackets.Load(),
		TxBytes:   q.txBytes.Load(),
		TxErrors:  q.txErrors.Load(),
	}
	if q.receives() {
		s.RxDropped, s.RxOversize = rxDrops(q.socketStats(), q.x.zeroCopy, q.x.shared != nil)
	}
	return s
}

// Close implements backend.Queue. A Recv waiting for frames is woken and
// returns ErrClosed; Close waits for it to leave before the socket may
// close, so no fd is used after close or reuse.
func (q *Queue) Close() error {
	if q.closed.Swap(true) {
		return nil
	}
	x := q.x
	if q.receives() {
		_ = q.wait.Close() // wakes a waiting Recv
		x.recvMu.Lock()    // Recv has returned and cannot start again
		q.wait.Release()
		q.socketStats() // final counters, before the socket may go
	}
	q.b.mu.Lock()
	q.b.closeQueueLocked(q)
	q.b.mu.Unlock()
	if q.promiscSk != nil {
		_ = q.promiscSk.Close()
		q.promiscSk = nil
	}
	if q.receives() {
		x.recvMu.Unlock()
	}
	return nil
}
