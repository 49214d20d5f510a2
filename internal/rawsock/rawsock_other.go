//go:build !linux

package rawsock

import (
	"net"
	"syscall"
	"time"
)

// Conn is an AF_PACKET socket (Linux only): it cannot be opened here.
type Conn struct{}

func unsupported(op string) error {
	return &net.OpError{Op: op, Net: "packet", Err: ErrUnsupported}
}

// InterfaceIndex reports ErrUnsupported.
func InterfaceIndex(name string) (int, error) { return 0, unsupported("interface index") }

// Listen reports ErrUnsupported.
func Listen(ifindex int, typ Type, protocol uint16, cfg *Config) (*Conn, error) {
	return nil, unsupported("listen")
}

// Ifindex returns 0.
func (c *Conn) Ifindex() int { return 0 }

// Bind reports ErrUnsupported.
func (c *Conn) Bind(protocol uint16) error { return unsupported("control") }

// Control reports ErrUnsupported.
func (c *Conn) Control(fn func(fd int) error) error { return unsupported("control") }

// SyscallConn reports ErrUnsupported.
func (c *Conn) SyscallConn() (syscall.RawConn, error) { return nil, unsupported("syscallconn") }

// SetPromiscuous reports ErrUnsupported.
func (c *Conn) SetPromiscuous(on bool) error { return unsupported("control") }

// SetIgnoreOutgoing reports ErrUnsupported.
func (c *Conn) SetIgnoreOutgoing(on bool) error { return unsupported("control") }

// SetAuxdata reports ErrUnsupported.
func (c *Conn) SetAuxdata(on bool) error { return unsupported("control") }

// SetQdiscBypass reports ErrUnsupported.
func (c *Conn) SetQdiscBypass(on bool) error { return unsupported("control") }

// SetFanout reports ErrUnsupported.
func (c *Conn) SetFanout(id uint16, mode int) error { return unsupported("control") }

// Stats reports ErrUnsupported.
func (c *Conn) Stats() (Stats, error) { return Stats{}, unsupported("control") }

// SetReadDeadline reports ErrUnsupported.
func (c *Conn) SetReadDeadline(t time.Time) error { return unsupported("set read deadline") }

// ReadMsg reports ErrUnsupported.
func (c *Conn) ReadMsg(b, oob []byte) (n, oobn, flags int, err error) {
	return 0, 0, 0, unsupported("read")
}

// TryReadMsg reports ErrUnsupported.
func (c *Conn) TryReadMsg(b, oob []byte) (n, oobn, flags int, err error) {
	return 0, 0, 0, unsupported("read")
}

// ReadMsgType reports ErrUnsupported.
func (c *Conn) ReadMsgType(b, oob []byte) (n, oobn, flags int, pkttype uint8, err error) {
	return 0, 0, 0, 0, unsupported("read")
}

// TryReadMsgType reports ErrUnsupported.
func (c *Conn) TryReadMsgType(b, oob []byte) (n, oobn, flags int, pkttype uint8, err error) {
	return 0, 0, 0, 0, unsupported("read")
}

// Close does nothing.
func (c *Conn) Close() error { return nil }
