package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	vtopo "github.com/vswitch/vswitch/test/topo"
)

// mmsghdr mirrors struct mmsghdr for sendmmsg(2) (x/sys/unix has no wrapper).
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
	_   [4]byte
}

// sender transmits one pre-built frame as fast as it can through an
// AF_PACKET socket with PACKET_QDISC_BYPASS, in batches with sendmmsg.
type sender struct {
	fd    int
	frame []byte
	iov   unix.Iovec
	msgs  []mmsghdr
}

// genBatch is the number of frames per sendmmsg call.
const genBatch = 64

// openSender opens a TX-only packet socket on ifname inside namespace ns.
// Protocol 0 means the socket receives nothing, so it costs nothing on RX.
func openSender(ns *vtopo.NS, ifname string, frame []byte) (*sender, error) {
	s := &sender{fd: -1, frame: frame}
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return fmt.Errorf("find %s: %w", ifname, err)
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("packet socket on %s: %w", ifname, err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
			unix.Close(fd)
			return fmt.Errorf("PACKET_QDISC_BYPASS on %s: %w", ifname, err)
		}
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4<<20)
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return fmt.Errorf("bind packet socket to %s: %w", ifname, err)
		}
		s.fd = fd
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.iov.Base = &s.frame[0]
	s.iov.SetLen(len(s.frame))
	s.msgs = make([]mmsghdr, genBatch)
	for i := range s.msgs {
		s.msgs[i].hdr.Iov = &s.iov
		s.msgs[i].hdr.SetIovlen(1)
	}
	return s, nil
}

// sendBatch sends up to n (<= genBatch) frames and returns how many the
// kernel accepted. Transient "no room" errors count as zero sent.
func (s *sender) sendBatch(n int) (int, error) {
	r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(s.fd),
		uintptr(unsafe.Pointer(&s.msgs[0])), uintptr(n), 0, 0, 0)
	if errno != 0 {
		switch errno {
		case unix.EAGAIN, unix.ENOBUFS, unix.EINTR, unix.ENETDOWN:
			return 0, nil
		}
		return 0, fmt.Errorf("sendmmsg: %w", errno)
	}
	runtime.KeepAlive(s.frame)
	return int(r), nil
}

// sendN sends n frames (best effort, small counts for learning/verify).
func (s *sender) sendN(n int) (int, error) {
	sent := 0
	for tries := 0; sent < n && tries < 1000; tries++ {
		k, err := s.sendBatch(min(n-sent, genBatch))
		if err != nil {
			return sent, err
		}
		sent += k
	}
	return sent, nil
}

// sendFor blasts frames until d elapsed or ctx ends and returns the frames
// accepted by the kernel and the real elapsed time.
func (s *sender) sendFor(ctx context.Context, d time.Duration) (uint64, time.Duration, error) {
	return blast(ctx, d, 16, s.step)
}

// step sends one batch of genBatch frames.
func (s *sender) step() (uint64, error) {
	k, err := s.sendBatch(genBatch)
	return uint64(k), err
}

// blast runs step on one locked thread until d elapsed or ctx ends,
// looking at the clock every `every` steps, and returns the frames the
// steps sent and the real elapsed time.
func blast(ctx context.Context, d time.Duration, every int, step func() (uint64, error)) (uint64, time.Duration, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start := time.Now()
	deadline := start.Add(d)
	var sent uint64
	for i := 0; ; i++ {
		k, err := step()
		sent += k
		if err != nil {
			return sent, time.Since(start), err
		}
		if i%every == 0 {
			now := time.Now()
			if now.After(deadline) {
				return sent, now.Sub(start), nil
			}
			if ctx.Err() != nil {
				return sent, now.Sub(start), ctx.Err()
			}
		}
	}
}

func (s *sender) close() {
	if s.fd >= 0 {
		unix.Close(s.fd)
		s.fd = -1
	}
}

// verifyResult counts what a packet socket in the sink saw.
type verifyResult struct {
	OK, Tagged, Other int
}

// receiver is a packet socket in the sink namespace used only to verify
// delivery (not during measurement, where it would cost CPU).
type receiver struct {
	fd int
}

func openReceiver(ns *vtopo.NS, ifname string) (*receiver, error) {
	r := &receiver{fd: -1}
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return fmt.Errorf("find %s: %w", ifname, err)
		}
		proto := int(htons(unix.ETH_P_ALL))
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return fmt.Errorf("packet socket on %s: %w", ifname, err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
			unix.Close(fd)
			return fmt.Errorf("PACKET_AUXDATA: %w", err)
		}
		tv := unix.Timeval{Usec: 20000}
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			unix.Close(fd)
			return fmt.Errorf("SO_RCVTIMEO: %w", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return fmt.Errorf("bind receiver to %s: %w", ifname, err)
		}
		r.fd = fd
		return nil
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// collect reads frames until want frames of ours arrived or d passed.
// Frames carrying a VLAN tag (in the frame or in auxdata) count as Tagged.
func (r *receiver) collect(dst net.HardwareAddr, want int, d time.Duration) (verifyResult, error) {
	var res verifyResult
	buf := make([]byte, 9100)
	oob := make([]byte, 256)
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && res.OK < want {
		n, oobn, _, _, err := unix.Recvmsg(r.fd, buf, oob, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return res, fmt.Errorf("recvmsg: %w", err)
		}
		tagged := false
		if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
			for _, m := range msgs {
				if m.Header.Level == unix.SOL_PACKET && m.Header.Type == unix.PACKET_AUXDATA &&
					len(m.Data) >= int(unsafe.Sizeof(unix.TpacketAuxdata{})) {
					aux := (*unix.TpacketAuxdata)(unsafe.Pointer(&m.Data[0]))
					if aux.Status&unix.TP_STATUS_VLAN_VALID != 0 {
						tagged = true
					}
				}
			}
		}
		f := buf[:n]
		switch {
		case isOurFrame(f, dst) && !tagged:
			res.OK++
		case tagged:
			res.Tagged++
		default:
			res.Other++
		}
	}
	return res, nil
}

func (r *receiver) close() {
	if r.fd >= 0 {
		unix.Close(r.fd)
		r.fd = -1
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
