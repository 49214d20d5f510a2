//go:build linux

package vepa

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Socket is a packet socket on the uplink that receives one ethertype
// (LLDP, or ECP) and sends frames. It survives the interface going away:
// Read reopens it by name.
type Socket struct {
	ifname string
	proto  uint16

	mu     sync.Mutex
	fd     int // -1 while closed or the interface is gone
	ifi    int
	closed bool
}

// OpenSocket opens a packet socket on ifname for ethertype proto. The
// interface may be absent: the socket opens when it appears.
func OpenSocket(ifname string, proto uint16) (*Socket, error) {
	s := &Socket{ifname: ifname, proto: proto, fd: -1}
	if err := s.reopen(); err != nil && !errors.Is(err, errNoInterface) {
		return nil, err
	}
	return s, nil
}

var errNoInterface = errors.New("interface not present")

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// reopen (re)binds the socket to the interface's current index.
func (s *Socket) reopen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return net.ErrClosed
	}
	if s.fd >= 0 {
		unix.Close(s.fd)
		s.fd = -1
	}
	ifi, err := net.InterfaceByName(s.ifname)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", errNoInterface, s.ifname, err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(s.proto)))
	if err != nil {
		return fmt.Errorf("packet socket for ethertype %#04x on %s: %w", s.proto, s.ifname, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(s.proto), Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return fmt.Errorf("bind packet socket to %s: %w", s.ifname, err)
	}
	// Frames this host sends are not ours to handle.
	_ = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
	tv := unix.NsecToTimeval(int64(200 * time.Millisecond))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return fmt.Errorf("receive timeout on %s: %w", s.ifname, err)
	}
	s.fd, s.ifi = fd, ifi.Index
	return nil
}

// Read returns the next frame, or (nil, nil) after about 200 ms without
// one. A socket whose interface went away is reopened on the way.
func (s *Socket) Read(buf []byte) ([]byte, error) {
	s.mu.Lock()
	fd, closed := s.fd, s.closed
	s.mu.Unlock()
	if closed {
		return nil, net.ErrClosed
	}
	if fd < 0 {
		if err := s.reopen(); err != nil {
			time.Sleep(200 * time.Millisecond)
			if errors.Is(err, errNoInterface) {
				return nil, nil
			}
			return nil, err
		}
		return nil, nil
	}
	n, _, err := unix.Recvfrom(fd, buf, 0)
	switch {
	case err == nil:
		return buf[:n], nil
	case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
		return nil, nil
	}
	// ENETDOWN (reported once when the interface goes down, or is bound
	// while down) or the interface went away. While the same interface
	// exists the kernel hooks the socket up again when it comes up: keep
	// it. A deleted interface never comes back to this socket: reopen on
	// the interface that has the name now. Either way wait a little, so a
	// persisting error does not spin.
	time.Sleep(200 * time.Millisecond)
	s.mu.Lock()
	ifindex := s.ifi
	s.mu.Unlock()
	if ifi, e := net.InterfaceByName(s.ifname); e == nil && ifi.Index == ifindex {
		return nil, nil
	}
	s.mu.Lock()
	if s.fd == fd && !s.closed {
		unix.Close(fd)
		s.fd = -1
	}
	s.mu.Unlock()
	return nil, nil
}

// Send transmits one frame on the interface.
func (s *Socket) Send(frame []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return net.ErrClosed
	}
	if s.fd < 0 {
		return fmt.Errorf("send on %s: %w", s.ifname, errNoInterface)
	}
	if err := unix.Sendto(s.fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: s.ifi, Halen: 6}); err != nil {
		return fmt.Errorf("send on %s: %w", s.ifname, err)
	}
	return nil
}

// Close closes the socket; Read and Send then return net.ErrClosed.
func (s *Socket) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.fd >= 0 {
		unix.Close(s.fd)
		s.fd = -1
	}
	return nil
}
