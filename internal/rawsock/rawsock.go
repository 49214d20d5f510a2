package rawsock

import "errors"

// Type is the socket type. Raw (unix.SOCK_RAW), whose frames carry their
// link-layer header, is the one vswitch uses.
type Type int

// Raw is the socket type of frames with their link-layer header.
const Raw Type = 3

// Config changes how Listen opens a socket. The zero value (or nil) is the
// default: non-blocking, waited on by the netpoller.
type Config struct {
	// Unpolled leaves the descriptor blocking and out of the Go runtime's
	// netpoller, for a caller that waits on it itself (poll on a TPACKET
	// ring). ReadMsg, TryReadMsg and SetReadDeadline then fail with
	// ErrUnpolled; Control and SyscallConn work.
	Unpolled bool
}

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
