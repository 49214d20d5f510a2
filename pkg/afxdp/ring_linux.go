//go:build linux

package afxdp

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ringHead is the part every AF_XDP ring shares: a producer index, a
// consumer index and a flags word, all living in memory shared with the
// kernel. Indexes run freely (they wrap at 2^32); the slot of index i is
// i & mask. We cache the other side's index and only reload it when the
// cached value says the ring looks full (producer) or empty (consumer),
// which keeps the shared cache line cold on the fast path.
type ringHead struct {
	mem      []byte // the whole mmapped region (for munmap)
	producer *uint32
	consumer *uint32
	flags    *uint32
	mask     uint32
	size     uint32
	cached   uint32 // producer rings: last seen consumer + size; consumer rings: last seen producer
	local    uint32 // our own index (producer for fill/tx, consumer for rx/comp)
}

func (r *ringHead) needWakeup() bool {
	return atomic.LoadUint32(r.flags)&unix.XDP_RING_NEED_WAKEUP != 0
}

// prodFree reports how many slots a producer ring can fill, reloading the
// consumer index only when fewer than want are known to be free.
func (r *ringHead) prodFree(want uint32) uint32 {
	free := r.cached - r.local
	if free >= want {
		return free
	}
	r.cached = atomic.LoadUint32(r.consumer) + r.size
	return r.cached - r.local
}

// prodSubmit publishes n entries written after r.local.
func (r *ringHead) prodSubmit(n uint32) {
	r.local += n
	atomic.StoreUint32(r.producer, r.local)
}

// consAvail reports how many entries a consumer ring holds, at most max.
func (r *ringHead) consAvail(max uint32) uint32 {
	n := r.cached - r.local
	if n == 0 {
		r.cached = atomic.LoadUint32(r.producer)
		n = r.cached - r.local
	}
	if n > max {
		n = max
	}
	return n
}

// peek reports whether a consumer ring holds an entry not consumed yet. It
// changes nothing, so the consumer's goroutine may call it without the
// ring's lock.
func (r *ringHead) peek() bool {
	return r.cached != r.local || atomic.LoadUint32(r.producer) != r.local
}

// consRelease hands n consumed entries back to the kernel.
func (r *ringHead) consRelease(n uint32) {
	r.local += n
	atomic.StoreUint32(r.consumer, r.local)
}

// pending is the number of entries the kernel has not consumed yet
// (producer rings only).
func (r *ringHead) pending() uint32 {
	return r.local - atomic.LoadUint32(r.consumer)
}

// addrRing is a fill or completion ring: entries are UMEM addresses.
type addrRing struct {
	ringHead
	addrs []uint64
}

// descRing is an RX or TX ring: entries are xdp_desc {addr, len, options}.
type descRing struct {
	ringHead
	descs []unix.XDPDesc
}

// mapRing mmaps one ring of the socket fd at the given page offset.
func mapRing(fd int, pgoff int64, off unix.XDPRingOffset, size uint32, entry uintptr) (ringHead, unsafe.Pointer, error) {
	length := int(off.Desc) + int(size)*int(entry)
	mem, err := unix.Mmap(fd, pgoff, length, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return ringHead{}, nil, fmt.Errorf("mmap ring at page offset %#x: %w", pgoff, err)
	}
	h := ringHead{
		mem:      mem,
		producer: (*uint32)(unsafe.Pointer(&mem[off.Producer])),
		consumer: (*uint32)(unsafe.Pointer(&mem[off.Consumer])),
		flags:    (*uint32)(unsafe.Pointer(&mem[off.Flags])),
		mask:     size - 1,
		size:     size,
	}
	return h, unsafe.Pointer(&mem[off.Desc]), nil
}

func mapAddrRing(fd int, pgoff int64, off unix.XDPRingOffset, size uint32, producer bool) (addrRing, error) {
	h, p, err := mapRing(fd, pgoff, off, size, 8)
	if err != nil {
		return addrRing{}, err
	}
	initIndexes(&h, producer)
	return addrRing{ringHead: h, addrs: unsafe.Slice((*uint64)(p), size)}, nil
}

func mapDescRing(fd int, pgoff int64, off unix.XDPRingOffset, size uint32, producer bool) (descRing, error) {
	h, p, err := mapRing(fd, pgoff, off, size, unsafe.Sizeof(unix.XDPDesc{}))
	if err != nil {
		return descRing{}, err
	}
	initIndexes(&h, producer)
	return descRing{ringHead: h, descs: unsafe.Slice((*unix.XDPDesc)(p), size)}, nil
}

func initIndexes(h *ringHead, producer bool) {
	if producer {
		h.local = atomic.LoadUint32(h.producer)
		h.cached = atomic.LoadUint32(h.consumer) + h.size
	} else {
		h.local = atomic.LoadUint32(h.consumer)
		h.cached = atomic.LoadUint32(h.producer)
	}
}

func (r *ringHead) unmap() {
	if r.mem != nil {
		_ = unix.Munmap(r.mem)
		r.mem = nil
	}
}
