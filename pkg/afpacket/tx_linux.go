//go:build linux

package afpacket

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// txPoolSize is how many Send calls may run their system call at the same
// time on one queue; further callers wait for a free scratch set.
const txPoolSize = 4

// txScratch is one preallocated sendmmsg argument set.
type txScratch struct {
	hdrs []unix.Mmsghdr
	iovs []unix.Iovec // one per frame, or two (vnet header, frame) with vnet
	vnet bool
	// vhdr is the all-zero virtio_net_hdr (no GSO, checksum complete) sent
	// in front of every frame when the socket has PACKET_VNET_HDR.
	vhdr [vnetHdrLen]byte
}

// txPool hands out scratch sets without allocating: a buffered channel is
// a lock-free-enough free list for a handful of concurrent senders.
type txPool struct {
	free chan *txScratch
}

func (p *txPool) init(batch int, vnet bool) {
	p.free = make(chan *txScratch, txPoolSize)
	per := 1
	if vnet {
		per = 2
	}
	for i := 0; i < txPoolSize; i++ {
		s := &txScratch{hdrs: make([]unix.Mmsghdr, batch), iovs: make([]unix.Iovec, batch*per), vnet: vnet}
		for j := range s.hdrs {
			s.hdrs[j].Hdr.Iov = &s.iovs[j*per]
			s.hdrs[j].Hdr.SetIovlen(per)
			if vnet {
				s.iovs[j*per].Base = &s.vhdr[0]
				s.iovs[j*per].SetLen(vnetHdrLen)
			}
		}
		p.free <- s
	}
}

func (p *txPool) get() *txScratch  { return <-p.free }
func (p *txPool) put(s *txScratch) { p.free <- s }

// send transmits frames with as few sendmmsg calls as possible. It returns
// the frames and bytes the kernel accepted, the frames it refused for
// transient (EAGAIN, ENOBUFS) or per-frame (EMSGSIZE, empty frame) reasons,
// and an error for anything that means the socket or interface is unusable
// (ENETDOWN, ENXIO, ENODEV, ...). It never blocks.
func (s *txScratch) send(fd int, frames [][]byte) (sent, nbytes, errs int, err error) {
	i := 0
	for i < len(frames) {
		// Fill the vector, skipping empty frames.
		m := 0
		for m < len(s.hdrs) && i+m < len(frames) {
			f := frames[i+m]
			if len(f) == 0 {
				break
			}
			iv := &s.iovs[m]
			if s.vnet {
				iv = &s.iovs[2*m+1]
			}
			iv.Base = &f[0]
			iv.SetLen(len(f))
			m++
		}
		if m == 0 { // frames[i] is empty
			errs++
			i++
			continue
		}
		// A raw system call: with MSG_DONTWAIT and PACKET_QDISC_BYPASS
		// sendmmsg never blocks (it runs the frames' way through the
		// kernel, a bridge included, and returns), so the Go scheduler
		// need not hear of it. A plain one would wake the runtime's
		// monitor (sysmon) when it sleeps, that is on the first frame
		// after every quiet spell: a futex wake on the frame's path.
		r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&s.hdrs[0])),
			uintptr(m), unix.MSG_DONTWAIT, 0, 0)
		for j := 0; j < m; j++ {
			if s.vnet {
				s.iovs[2*j+1].Base = nil // do not keep frames alive
			} else {
				s.iovs[j].Base = nil
			}
		}
		switch {
		case e == 0:
			k := int(r)
			for j := 0; j < k; j++ {
				nbytes += len(frames[i+j])
			}
			sent += k
			i += k
			if k == 0 { // should not happen; avoid spinning
				errs += len(frames) - i
				return
			}
		case e == unix.EINTR:
			// retry the same frames
		case e == unix.EAGAIN || e == unix.ENOBUFS:
			// The device or socket buffer is full: drop the rest of this
			// call rather than spin, the caller moves on.
			errs += len(frames) - i
			return
		case e == unix.EMSGSIZE || e == unix.EINVAL:
			// This frame cannot go out (bigger than MTU + tag, or shorter
			// than a link-layer header): skip it, keep the rest.
			errs++
			i++
		default:
			errs += len(frames) - i
			err = e
			return
		}
	}
	return
}
