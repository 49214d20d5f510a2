package rawsock

import (
	"errors"
	"net"
)

// Type is the socket type: Raw frames carry their link-layer header,
// Datagram ones only the payload.
type Type int

// Socket types (unix.SOCK_RAW and unix.SOCK_DGRAM).
const (
	Raw      Type = 3
	Datagram Type = 2
)

// Config changes how Listen opens a socket. The zero value (or nil) is the
// default: non-blocking, waited on by the netpoller.
type Config struct {
	// Unpolled leaves the descriptor blocking and out of the Go runtime's
	// netpoller, for a caller that waits on it itself (poll on a TPACKET
	// ring). Read, ReadFrom, ReadMsg, Write, WriteTo and the deadlines
	// then fail with ErrUnpolled; Control and SyscallConn work.
	Unpolled bool
}

// Addr is a link-layer address: a packet socket's peer.
type Addr struct {
	HardwareAddr net.HardwareAddr
}

// Network implements net.Addr.
func (a *Addr) Network() string { return "packet" }

// String implements net.Addr.
func (a *Addr) String() string { return a.HardwareAddr.String() }

// Stats are a socket's PACKET_STATISTICS since the previous read.
type Stats struct {
	Packets uint32 // frames received (including Drops)
	Drops   uint32 // frames dropped because the receive buffer was full
}

// Errors returned (wrapped in *net.OpError) by a Conn.
var (
	// ErrUnpolled: the operation needs the netpoller, and the Conn was
	// opened with Config.Unpolled.
	ErrUnpolled = errors.New("rawsock: not available on an unpolled socket")
	// ErrUnsupported: packet sockets are Linux only.
	ErrUnsupported = errors.New("rawsock: packet sockets need Linux")
)
