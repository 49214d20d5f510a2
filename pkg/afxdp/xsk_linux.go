//go:build linux

package afxdp

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Ring and UMEM geometry. Every socket gets rxFrames chunks that circulate
// between the fill ring, the RX ring and the caller's batches, and txFrames
// chunks that circulate between a free stack, the TX ring and the
// completion ring. Each ring is as large as the set of chunks it carries,
// so a producer never finds its ring full while it still holds chunks.
const (
	rxFrames = 2048
	txFrames = 2048
)

// xsk is one AF_XDP socket bound to (ifindex, queue), with its own UMEM
// (class 0) or sharing class 0's (shared). All Queues of a Backend that
// name the same (interface, queue, class) share one xsk: at most one of
// them receives, any number transmit (serialised per batch by txMu).
type xsk struct {
	key      sockKey
	ifname   string
	ifindex  int
	queueID  int
	fd       int
	zeroCopy bool
	chunk    uint64 // chunk (frame) size, a power of two
	umem     []byte

	fill addrRing
	comp addrRing
	rx   descRing
	tx   descRing

	// recvMu is held by Recv for its whole call, poll included, so Close
	// can wait for a blocked Recv to leave before the fd goes away.
	recvMu sync.Mutex

	// rxMu guards the fill and RX rings and outstanding.
	rxMu        sync.Mutex
	outstanding int // RX chunks handed out in batches, not yet released

	// txMu guards the TX and completion rings and txFree.
	txMu   sync.Mutex
	txFree []uint64

	// closed is written with both rxMu and txMu held.
	closed bool

	// shared is, for a socket that shares another's UMEM on the same NIC
	// queue (class > 0, see Backend.OpenQueue), that socket: its UMEM,
	// fill ring, rxMu and outstanding serve both, and it transmits for
	// both (a shared socket has an RX ring only). Nil otherwise.
	shared *xsk
	class  int

	// Guarded by Backend.mu.
	refs    int
	rxOwner *Queue
}

// pool is the socket whose UMEM and fill ring x uses: x itself, or the
// socket it shares them with.
func (x *xsk) pool() *xsk {
	if x.shared != nil {
		return x.shared
	}
	return x
}

// rxLock is the mutex guarding x's RX ring and its pool's fill ring:
// the pool's rxMu, one for every socket of the NIC queue.
func (x *xsk) rxLock() *sync.Mutex { return &x.pool().rxMu }

// openXSK creates, sizes, maps and binds one socket. bindFlags is
// XDP_ZEROCOPY or XDP_COPY (XDP_USE_NEED_WAKEUP is always added).
func openXSK(ifname string, ifindex, queueID int, chunk uint64, bindFlags uint16) (_ *xsk, err error) {
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("create AF_XDP socket: %w", err)
	}
	x := &xsk{ifname: ifname, ifindex: ifindex, queueID: queueID, fd: fd, chunk: chunk}
	defer func() {
		if err != nil {
			x.teardown()
		}
	}()

	// UMEM: anonymous memory we own. It stays mapped while batches still
	// point into it (see teardown), so a late reader never faults.
	umemLen := int(chunk) * (rxFrames + txFrames)
	x.umem, err = unix.Mmap(-1, 0, umemLen, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("mmap %d byte UMEM: %w", umemLen, err)
	}
	reg := unix.XDPUmemReg{
		Addr: uint64(uintptr(unsafe.Pointer(&x.umem[0]))),
		Len:  uint64(umemLen),
		Size: uint32(chunk),
		// Headroom 0: in both copy and zero-copy mode the kernel already
		// places received data XDP_PACKET_HEADROOM (256) bytes into the
		// chunk, and the RX descriptor's addr points at the data, so the
		// bytes in front are ours and far more than backend.Headroom.
		Headroom: 0,
	}
	if err := setsockopt(fd, unix.XDP_UMEM_REG, unsafe.Pointer(&reg), unsafe.Sizeof(reg)); err != nil {
		return nil, fmt.Errorf("register UMEM: %w", err)
	}
	for _, r := range []struct {
		opt  int
		size int
		name string
	}{
		{unix.XDP_UMEM_FILL_RING, rxFrames, "fill"},
		{unix.XDP_UMEM_COMPLETION_RING, txFrames, "completion"},
		{unix.XDP_RX_RING, rxFrames, "rx"},
		{unix.XDP_TX_RING, txFrames, "tx"},
	} {
		if err := unix.SetsockoptInt(fd, unix.SOL_XDP, r.opt, r.size); err != nil {
			return nil, fmt.Errorf("size %s ring: %w", r.name, err)
		}
	}
	off, err := mmapOffsets(fd)
	if err != nil {
		return nil, err
	}
	if x.fill, err = mapAddrRing(fd, unix.XDP_UMEM_PGOFF_FILL_RING, off.Fr, rxFrames, true); err != nil {
		return nil, fmt.Errorf("fill ring: %w", err)
	}
	if x.comp, err = mapAddrRing(fd, unix.XDP_UMEM_PGOFF_COMPLETION_RING, off.Cr, txFrames, false); err != nil {
		return nil, fmt.Errorf("completion ring: %w", err)
	}
	if x.rx, err = mapDescRing(fd, unix.XDP_PGOFF_RX_RING, off.Rx, rxFrames, false); err != nil {
		return nil, fmt.Errorf("rx ring: %w", err)
	}
	if x.tx, err = mapDescRing(fd, unix.XDP_PGOFF_TX_RING, off.Tx, txFrames, true); err != nil {
		return nil, fmt.Errorf("tx ring: %w", err)
	}

	// Chunks [0, rxFrames) go to the fill ring; the rest are TX chunks.
	for i := uint32(0); i < rxFrames; i++ {
		x.fill.addrs[(x.fill.local+i)&x.fill.mask] = uint64(i) * chunk
	}
	x.fill.prodSubmit(rxFrames)
	x.txFree = make([]uint64, 0, txFrames)
	for i := txFrames - 1; i >= 0; i-- {
		x.txFree = append(x.txFree, uint64(rxFrames+i)*chunk)
	}

	// Copy mode sends at most 32 frames per sendto by default; allow a
	// whole batch per kick where the kernel has the knob (6.17+).
	_ = unix.SetsockoptInt(fd, unix.SOL_XDP, unix.XDP_MAX_TX_SKB_BUDGET, 256)

	sa := &unix.SockaddrXDP{
		Flags:   bindFlags | unix.XDP_USE_NEED_WAKEUP,
		Ifindex: uint32(ifindex),
		QueueID: uint32(queueID),
	}
	if err := unix.Bind(fd, sa); err != nil {
		mode := "copy"
		if bindFlags&unix.XDP_ZEROCOPY != 0 {
			mode = "zero-copy"
		}
		if errors.Is(err, unix.EBUSY) {
			return nil, fmt.Errorf("bind %s queue %d (%s): queue already has an AF_XDP socket: %w", ifname, queueID, mode, err)
		}
		return nil, fmt.Errorf("bind %s queue %d (%s): %w", ifname, queueID, mode, err)
	}
	x.zeroCopy = bindFlags&unix.XDP_ZEROCOPY != 0
	return x, nil
}

// openSharedXSK binds another socket to primary's (device, queue) that
// shares its UMEM, fill and completion rings (XDP_SHARED_UMEM): the kernel
// takes the chunks of frames the XDP program redirects to it from the
// shared fill ring, and the new socket has only an RX ring of its own.
// It receives for class (see Backend.OpenQueue).
func openSharedXSK(primary *xsk, class int) (_ *xsk, err error) {
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("create AF_XDP socket: %w", err)
	}
	x := &xsk{ifname: primary.ifname, ifindex: primary.ifindex, queueID: primary.queueID, fd: fd,
		chunk: primary.chunk, zeroCopy: primary.zeroCopy, shared: primary, class: class}
	defer func() {
		if err != nil {
			x.teardown()
		}
	}()
	if err := unix.SetsockoptInt(fd, unix.SOL_XDP, unix.XDP_RX_RING, rxFrames); err != nil {
		return nil, fmt.Errorf("size rx ring: %w", err)
	}
	off, err := mmapOffsets(fd)
	if err != nil {
		return nil, err
	}
	if x.rx, err = mapDescRing(fd, unix.XDP_PGOFF_RX_RING, off.Rx, rxFrames, false); err != nil {
		return nil, fmt.Errorf("rx ring: %w", err)
	}
	// A socket sharing a UMEM takes no mode flags: it gets the pool's.
	sa := &unix.SockaddrXDP{
		Flags:        unix.XDP_SHARED_UMEM,
		Ifindex:      uint32(primary.ifindex),
		QueueID:      uint32(primary.queueID),
		SharedUmemFD: uint32(primary.fd),
	}
	if err := unix.Bind(fd, sa); err != nil {
		return nil, fmt.Errorf("bind %s queue %d sharing its UMEM (class %d): %w", primary.ifname, primary.queueID, class, err)
	}
	return x, nil
}

// mmapOffsets asks where in its mmap areas each of the socket's rings keeps
// its producer and consumer indexes, flags and descriptors.
func mmapOffsets(fd int) (unix.XDPMmapOffsets, error) {
	var off unix.XDPMmapOffsets
	optlen := uint32(unsafe.Sizeof(off))
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, unix.XDP_MMAP_OFFSETS,
		uintptr(unsafe.Pointer(&off)), uintptr(unsafe.Pointer(&optlen)), 0); e != 0 {
		return off, fmt.Errorf("get ring mmap offsets: %w", e)
	}
	return off, nil
}

func setsockopt(fd, opt int, p unsafe.Pointer, n uintptr) error {
	_, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt), uintptr(p), n, 0)
	if e != 0 {
		return e
	}
	return nil
}

// recvLocked moves up to cap(b) descriptors from the RX ring into the batch
// arrays. Caller holds x.rxLock().
func (x *xsk) recvLocked(buf [][]byte, off, length []int, meta []uint64) int {
	n := x.rx.consAvail(uint32(len(buf)))
	if n == 0 {
		return 0
	}
	p := x.pool()
	mask := x.chunk - 1
	for i := uint32(0); i < n; i++ {
		d := &x.rx.descs[(x.rx.local+i)&x.rx.mask]
		base := d.Addr &^ mask
		buf[i] = p.umem[base : base+x.chunk : base+x.chunk]
		off[i] = int(d.Addr - base)
		length[i] = int(d.Len)
		meta[i] = base
	}
	x.rx.consRelease(n)
	p.outstanding += int(n)
	return int(n)
}

// releaseLocked gives chunks back to the fill ring. x is a pool (see
// pool); caller holds its rxMu.
func (x *xsk) releaseLocked(meta []uint64) {
	x.outstanding -= len(meta)
	if x.closed {
		if x.outstanding <= 0 && x.umem != nil {
			_ = unix.Munmap(x.umem)
			x.umem = nil
		}
		return
	}
	n := uint32(len(meta))
	// The fill ring holds every RX chunk, so there is always room.
	x.fill.prodFree(n)
	mask := x.chunk - 1
	for i, a := range meta {
		x.fill.addrs[(x.fill.local+uint32(i))&x.fill.mask] = a &^ mask
	}
	x.fill.prodSubmit(n)
}

// drainRXLocked returns every frame waiting in the RX ring to the fill
// ring. Caller holds x.rxLock().
func (x *xsk) drainRXLocked() {
	p := x.pool()
	var meta [64]uint64
	for {
		n := x.rx.consAvail(uint32(len(meta)))
		if n == 0 {
			return
		}
		for i := uint32(0); i < n; i++ {
			meta[i] = x.rx.descs[(x.rx.local+i)&x.rx.mask].Addr
		}
		x.rx.consRelease(n)
		p.outstanding += int(n)
		p.releaseLocked(meta[:n])
	}
}

// reapLocked moves completed TX chunks back to the free stack. Caller holds txMu.
func (x *xsk) reapLocked() {
	n := x.comp.consAvail(txFrames)
	for i := uint32(0); i < n; i++ {
		x.txFree = append(x.txFree, x.comp.addrs[(x.comp.local+i)&x.comp.mask])
	}
	if n > 0 {
		x.comp.consRelease(n)
	}
}

// kickLocked asks the kernel to process the TX ring. In copy mode the
// kernel transmits inside sendto, a limited budget per call, and answers
// EAGAIN when frames are left; keep kicking while it makes progress.
// Caller holds txMu.
//
// The kick is a raw system call: it never blocks (MSG_DONTWAIT), so the
// runtime need not know about it. A plain syscall.Syscall lets the
// scheduler hand our P to another thread, and its return wakes the
// runtime's monitor thread if that slept, which after a quiet spell is a
// futex wake on every frame's path (see internal/rxwait).
func (x *xsk) kickLocked() (errno unix.Errno) {
	for tries := 0; tries < 64; tries++ {
		_, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(x.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			return 0
		case unix.EAGAIN, unix.EBUSY, unix.EINTR:
			if x.tx.pending() == 0 {
				return 0
			}
			x.reapLocked()
			continue
		default:
			// ENOBUFS, ENETDOWN, ENXIO: frames stay in the ring (or
			// are dropped by the kernel); report but do not spin.
			return e
		}
	}
	return unix.EAGAIN
}

// wakeRX nudges the driver to refill from the fill ring (zero-copy drivers
// set need_wakeup on the fill ring when they ran dry). A raw system call,
// like kickLocked's: it never blocks. x is a pool (see pool); caller holds
// its rxMu.
func (x *xsk) wakeRXLocked() {
	if !x.closed && x.fill.needWakeup() {
		_, _, _ = unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(x.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	}
}

// stats reads the kernel's per-socket counters. The fill ring's misses
// are the pool's, which a socket sharing it reports as 0: its pool's
// socket has them (see rxDrops).
func (x *xsk) stats() (unix.XDPStatistics, error) {
	var st unix.XDPStatistics
	optlen := uint32(unsafe.Sizeof(st))
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(x.fd), unix.SOL_XDP, unix.XDP_STATISTICS,
		uintptr(unsafe.Pointer(&st)), uintptr(unsafe.Pointer(&optlen)), 0); e != 0 {
		return st, e
	}
	if x.shared != nil {
		st.Rx_fill_ring_empty_descs = 0
	}
	return st, nil
}

// teardown closes the socket and unmaps the rings. The UMEM is unmapped
// now if no batch points into it, else by the Release that returns the
// last chunk (a socket sharing another's UMEM has none of its own). Callers
// hold rxMu and txMu (or own x exclusively); for a shared socket, the
// pool's rxMu.
func (x *xsk) teardown() {
	x.closed = true
	x.fill.unmap()
	x.comp.unmap()
	x.rx.unmap()
	x.tx.unmap()
	if x.fd >= 0 {
		_ = unix.Close(x.fd)
		x.fd = -1
	}
	if x.outstanding <= 0 && x.umem != nil {
		_ = unix.Munmap(x.umem)
		x.umem = nil
	}
}
