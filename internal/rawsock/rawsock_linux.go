//go:build linux

package rawsock

import (
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Raw must be the kernel's value (a negative constant does
// not convert to uint: this fails to compile if they drift).
const _ = uint(Raw-unix.SOCK_RAW) + uint(unix.SOCK_RAW-Raw)

// Conn is an AF_PACKET socket bound to one interface. Its methods are safe
// for concurrent use; reads are serialised with each other, as are writes.
type Conn struct {
	ifindex int
	typ     Type
	polled  bool
	f       *os.File
	rc      syscall.RawConn
	closed  atomic.Bool

	// Allocation-free reads: the reader holding rmu sets up rmsg and runs
	// the cached rfn through rc.Read.
	rmu    sync.Mutex
	rmsg   unix.Msghdr
	riov   unix.Iovec
	rfn    func(fd uintptr) bool
	rwait  bool // this read waits for a frame (ReadMsg, not TryReadMsg)
	rn     int
	rerr   error
	rflags int                       // msg_flags of the last read
	rfrom  unix.RawSockaddrLinklayer // the sender's address (msg_name) of the last read
}

// InterfaceIndex returns the index of the interface called name in the
// calling thread's network namespace (SIOCGIFINDEX). The error wraps
// unix.ENODEV when there is none.
func InterfaceIndex(name string) (int, error) {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, fmt.Errorf("interface %q: %w", name, unix.ENODEV)
	}
	// Any socket serves the ioctl; an AF_UNIX one needs no privilege and
	// lives in the calling thread's namespace.
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("interface %s: socket for SIOCGIFINDEX: %w", name, err)
	}
	defer unix.Close(fd)
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, fmt.Errorf("interface %s: %w", name, err)
	}
	return int(ifr.Uint32()), nil
}

// Listen opens a packet socket of type typ in the calling thread's network
// namespace and binds it to the interface with index ifindex for protocol
// (an ethertype in host byte order, unix.ETH_P_ALL for every frame; 0:
// nothing is received until Bind names one). cfg may be nil.
func Listen(ifindex int, typ Type, protocol uint16, cfg *Config) (*Conn, error) {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	flags := unix.SOCK_CLOEXEC
	if !c.Unpolled {
		flags |= unix.SOCK_NONBLOCK
	}
	// Protocol 0 at creation: nothing is received before the bind below,
	// which names the interface (frames of others never get in).
	fd, err := unix.Socket(unix.AF_PACKET, int(typ)|flags, 0)
	if err != nil {
		return nil, opErr("listen", ifindex, fmt.Errorf("socket(AF_PACKET): %w", err))
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(protocol), Ifindex: ifindex}); err != nil {
		unix.Close(fd)
		return nil, opErr("listen", ifindex, fmt.Errorf("bind: %w", err))
	}
	f := os.NewFile(uintptr(fd), fmt.Sprintf("packet:%d", ifindex))
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, opErr("listen", ifindex, err)
	}
	conn := &Conn{ifindex: ifindex, typ: typ, polled: !c.Unpolled, f: f, rc: rc}
	conn.rmsg.Name = (*byte)(unsafe.Pointer(&conn.rfrom))
	conn.rmsg.Iov = &conn.riov
	conn.rmsg.SetIovlen(1)
	conn.rfn = conn.recvmsg
	return conn, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// opErr wraps err as a *net.OpError of network "packet" on the interface.
func opErr(op string, ifindex int, err error) error {
	return &net.OpError{Op: op, Net: "packet", Addr: ifAddr(ifindex), Err: err}
}

// ifAddr names an interface in errors ("packet:ifindex 3").
type ifAddr int

func (a ifAddr) Network() string { return "packet" }
func (a ifAddr) String() string  { return fmt.Sprintf("ifindex %d", int(a)) }

// wrap turns a failed operation's error into a *net.OpError; once the
// Conn is closed every error reads as net.ErrClosed.
func (c *Conn) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if c.closed.Load() {
		err = net.ErrClosed
	}
	return opErr(op, c.ifindex, err)
}

// Ifindex is the interface the socket is bound to.
func (c *Conn) Ifindex() int { return c.ifindex }

// Bind binds the socket to its interface again with protocol (host byte
// order; 0 stops reception). A ring or other option set up meanwhile stays.
func (c *Conn) Bind(protocol uint16) error {
	return c.Control(func(fd int) error {
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(protocol), Ifindex: c.ifindex}); err != nil {
			return fmt.Errorf("bind protocol %#04x: %w", protocol, err)
		}
		return nil
	})
}

// Control runs fn with the socket's descriptor, which is valid only during
// the call (use it for options this package does not wrap: rings, buffer
// sizes). Its error is returned wrapped.
func (c *Conn) Control(fn func(fd int) error) error {
	var ferr error
	if err := c.rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return c.wrap("control", err)
	}
	return c.wrap("control", ferr)
}

// SyscallConn returns the raw connection, for callers that wait on the
// socket themselves (syscall.Conn).
func (c *Conn) SyscallConn() (syscall.RawConn, error) {
	if c.closed.Load() {
		return nil, c.wrap("syscallconn", net.ErrClosed)
	}
	return c.rc, nil
}

// setInt sets an integer socket option.
func (c *Conn) setInt(level, opt int, v int, what string) error {
	return c.Control(func(fd int) error {
		if err := unix.SetsockoptInt(fd, level, opt, v); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// SetPromiscuous adds (on) or drops a PACKET_MR_PROMISC membership on the
// interface: it is promiscuous while any socket holds one, and the kernel
// drops this socket's when it closes.
func (c *Conn) SetPromiscuous(on bool) error {
	opt := unix.PACKET_DROP_MEMBERSHIP
	if on {
		opt = unix.PACKET_ADD_MEMBERSHIP
	}
	return c.Control(func(fd int) error {
		mreq := &unix.PacketMreq{Ifindex: int32(c.ifindex), Type: unix.PACKET_MR_PROMISC}
		if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, opt, mreq); err != nil {
			return fmt.Errorf("PACKET_MR_PROMISC membership: %w", err)
		}
		return nil
	})
}

// SetIgnoreOutgoing hides the frames this host transmits on the interface
// from the socket (PACKET_IGNORE_OUTGOING), or shows them again.
func (c *Conn) SetIgnoreOutgoing(on bool) error {
	return c.setInt(unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, boolInt(on), "PACKET_IGNORE_OUTGOING")
}

// SetAuxdata makes every received frame carry a PACKET_AUXDATA control
// message (ReadMsg), with the VLAN tag the kernel took out of the frame.
func (c *Conn) SetAuxdata(on bool) error {
	return c.setInt(unix.SOL_PACKET, unix.PACKET_AUXDATA, boolInt(on), "PACKET_AUXDATA")
}

// SetQdiscBypass makes frames the socket sends skip the qdisc layer
// (PACKET_QDISC_BYPASS): less latency, and other packet sockets on the
// host do not see them.
func (c *Conn) SetQdiscBypass(on bool) error {
	return c.setInt(unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, boolInt(on), "PACKET_QDISC_BYPASS")
}

// SetFanout joins the socket to PACKET_FANOUT group id with mode, a
// unix.PACKET_FANOUT_* mode or'ed with PACKET_FANOUT_FLAG_* flags. The
// socket must be bound to a protocol. A fanout group has its own protocol
// hook: PACKET_IGNORE_OUTGOING set on a member does not apply to it, use
// PACKET_FANOUT_FLAG_IGNORE_OUTGOING.
func (c *Conn) SetFanout(id uint16, mode int) error {
	return c.setInt(unix.SOL_PACKET, unix.PACKET_FANOUT, int(id)|mode<<16, fmt.Sprintf("PACKET_FANOUT group %d", id))
}

// Stats returns the socket's PACKET_STATISTICS; the kernel resets them on
// every read.
func (c *Conn) Stats() (Stats, error) {
	var st Stats
	err := c.Control(func(fd int) error {
		s, err := unix.GetsockoptTpacketStats(fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
		if err != nil {
			return fmt.Errorf("PACKET_STATISTICS: %w", err)
		}
		st = Stats{Packets: s.Packets, Drops: s.Drops}
		return nil
	})
	return st, err
}

// SetReadDeadline sets the read deadline (zero: none). A ReadMsg blocked
// in another goroutine returns an error matching os.ErrDeadlineExceeded
// once it passes.
func (c *Conn) SetReadDeadline(t time.Time) error {
	if !c.polled {
		return c.wrap("set read deadline", ErrUnpolled)
	}
	return c.wrap("set read deadline", c.f.SetReadDeadline(t))
}

// ReadMsg reads one frame into b and its control messages into oob,
// waiting for one if none is queued. It returns the frame's length, which
// is more than len(b) when the frame was cut to fit (flags then include
// unix.MSG_TRUNC), the bytes of oob filled and the message flags. It
// allocates nothing.
func (c *Conn) ReadMsg(b, oob []byte) (n, oobn, flags int, err error) {
	n, oobn, flags, _, err = c.read(b, oob, true)
	return n, oobn, flags, err
}

// ReadMsgType is ReadMsg that also returns the frame's packet type, the
// sll_pkttype of its sender's address: unix.PACKET_OUTGOING for a frame
// the host sent, PACKET_HOST, PACKET_BROADCAST, PACKET_MULTICAST or
// PACKET_OTHERHOST for one it received.
func (c *Conn) ReadMsgType(b, oob []byte) (n, oobn, flags int, pkttype uint8, err error) {
	return c.read(b, oob, true)
}

// TryReadMsgType is ReadMsgType without the wait, as TryReadMsg.
func (c *Conn) TryReadMsgType(b, oob []byte) (n, oobn, flags int, pkttype uint8, err error) {
	return c.read(b, oob, false)
}

// TryReadMsg is ReadMsg without the wait: when no frame is queued it
// returns at once with an error matching unix.EAGAIN (a caller does its
// idle work, then waits in ReadMsg).
func (c *Conn) TryReadMsg(b, oob []byte) (n, oobn, flags int, err error) {
	n, oobn, flags, _, err = c.read(b, oob, false)
	return n, oobn, flags, err
}

func (c *Conn) read(b, oob []byte, wait bool) (n, oobn, flags int, pkttype uint8, err error) {
	if !c.polled {
		return 0, 0, 0, 0, c.wrap("read", ErrUnpolled)
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.riov.Base, c.riov.Len = nil, 0
	if len(b) > 0 {
		c.riov.Base = &b[0]
		c.riov.SetLen(len(b))
	}
	c.rmsg.Control = nil
	c.rmsg.SetControllen(0)
	if len(oob) > 0 {
		c.rmsg.Control = &oob[0]
		c.rmsg.SetControllen(len(oob))
	}
	c.rmsg.Flags = 0
	c.rmsg.Namelen = unix.SizeofSockaddrLinklayer
	c.rwait = wait
	err = c.rc.Read(c.rfn)
	if err == nil {
		err = c.rerr
	}
	// Drop the references to the caller's buffers.
	c.riov.Base, c.rmsg.Control = nil, nil
	if err != nil {
		return 0, 0, 0, 0, c.wrap("read", err)
	}
	return c.rn, int(c.rmsg.Controllen), c.rflags, c.rfrom.Pkttype, nil
}

// recvmsg is the RawConn callback of read: one non-blocking recvmsg
// (MSG_TRUNC: it returns the frame's full length); false asks the
// netpoller to wait for readability.
func (c *Conn) recvmsg(fd uintptr) bool {
	for {
		r, _, e := unix.Syscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&c.rmsg)), unix.MSG_TRUNC|unix.MSG_DONTWAIT)
		switch e {
		case 0:
			c.rn, c.rflags, c.rerr = int(r), int(c.rmsg.Flags), nil
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			if c.rwait {
				return false
			}
		}
		c.rn, c.rflags, c.rerr = 0, 0, e
		return true
	}
}

// Close closes the socket. A Read blocked in another goroutine returns an
// error matching net.ErrClosed; the descriptor is released once no call
// uses it any more. Closing a closed Conn does nothing.
func (c *Conn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	if err := c.f.Close(); err != nil {
		return opErr("close", c.ifindex, err)
	}
	return nil
}
