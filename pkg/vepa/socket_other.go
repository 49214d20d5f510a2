//go:build !linux

package vepa

import "errors"

// Socket is a packet socket on the uplink (Linux only).
type Socket struct{}

// OpenSocket fails: packet sockets are Linux only.
func OpenSocket(ifname string, proto uint16) (*Socket, error) {
	return nil, errors.New("vepa: packet sockets need Linux")
}

// Read fails on this OS.
func (s *Socket) Read(buf []byte) ([]byte, error) { return nil, errors.New("vepa: not supported") }

// Send fails on this OS.
func (s *Socket) Send(frame []byte) error { return errors.New("vepa: not supported") }

// Close does nothing.
func (s *Socket) Close() error { return nil }
