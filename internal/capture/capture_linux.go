package capture

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/vswitch/vswitch/internal/pcapfile"
	"github.com/vswitch/vswitch/internal/rawsock"
)

// tagLen is the size of one 802.1Q/802.1ad tag (TPID + TCI).
const tagLen = 4

// Capture is an AF_PACKET socket bound to one interface, ready to Run.
type Capture struct {
	ifname  string
	ifindex int
	conn    *rawsock.Conn
	netns   netns.NsHandle // the network namespace Open ran in (link events)

	// Receive buffers, allocated once in Open: the frame lands at
	// buf[tagLen:] so a tag can be rebuilt in place.
	buf []byte
	oob []byte

	pw *pcapfile.Writer // the output, flushed when the socket is idle

	// linkEvent is set by the link watcher of a down interface before it
	// wakes the blocked read (see watchLink).
	linkEvent atomic.Bool

	slot *slot // the session slot, released by Close
}

// Open opens a capture socket on ifname, resolving the name in the calling
// thread's network namespace, within the host-wide default Limit. Close it
// when done.
func Open(ifname string) (*Capture, error) { return Limit{}.Open(ifname) }

// Open opens a capture socket on ifname, resolving the name in the calling
// thread's network namespace, if one of l's slots is free (else an error
// wrapping ErrTooManySessions). Close it when done.
func (l Limit) Open(ifname string) (*Capture, error) {
	s, err := l.withDefaults().acquire(ifname)
	if err != nil {
		return nil, fmt.Errorf("capture on %s: %w", ifname, err)
	}
	c, err := open(ifname)
	if err != nil {
		s.release()
		return nil, err
	}
	c.slot = s
	return c, nil
}

func open(ifname string) (*Capture, error) {
	ifindex, err := rawsock.InterfaceIndex(ifname)
	if err != nil {
		if errors.Is(err, unix.ENODEV) {
			return nil, fmt.Errorf("capture on %s: %w", ifname, ErrNoInterface)
		}
		return nil, fmt.Errorf("capture on %s: look up interface: %w", ifname, err)
	}
	// Protocol 0: nothing is received until setup has configured the
	// socket and binds it to ETH_P_ALL.
	conn, err := rawsock.Listen(ifindex, rawsock.Raw, 0, nil)
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return nil, fmt.Errorf("capture on %s: %w", ifname, ErrPermission)
	case errors.Is(err, unix.ENODEV):
		return nil, fmt.Errorf("capture on %s: %w", ifname, ErrNoInterface)
	case err != nil:
		return nil, fmt.Errorf("capture on %s: open packet socket: %w", ifname, err)
	}
	ns, err := netns.Get()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("capture on %s: identify the network namespace: %w", ifname, err)
	}
	c, err := setup(conn, ifname, ns)
	if err != nil {
		conn.Close()
		ns.Close()
		return nil, fmt.Errorf("capture on %s: %w", ifname, err)
	}
	return c, nil
}

func setup(conn *rawsock.Conn, ifname string, ns netns.NsHandle) (*Capture, error) {
	if err := conn.SetAuxdata(true); err != nil {
		return nil, err
	}
	err := conn.Control(func(fd int) error {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
			return fmt.Errorf("enable SO_TIMESTAMPNS: %w", err)
		}
		// A large receive buffer rides out bursts while the file is
		// written. FORCE needs CAP_NET_ADMIN; fall back to what rmem_max
		// allows.
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20); err != nil {
			_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Bind last: until now the socket (protocol 0) received nothing.
	if err := conn.Bind(unix.ETH_P_ALL); err != nil {
		if errors.Is(err, unix.ENODEV) {
			return nil, ErrNoInterface
		}
		return nil, err
	}
	// Reset the drop counter so Stats counts only this capture.
	_, _ = conn.Stats()

	return &Capture{
		ifname:  ifname,
		ifindex: conn.Ifindex(),
		conn:    conn,
		netns:   ns,
		buf:     make([]byte, tagLen+Snaplen),
		oob:     make([]byte, 256),
	}, nil
}

// Ifname is the interface the capture is bound to.
func (c *Capture) Ifname() string { return c.ifname }

// Close closes the socket and frees the session slot.
func (c *Capture) Close() error {
	err := c.conn.Close()
	if c.netns.IsOpen() {
		c.netns.Close()
	}
	c.slot.release()
	c.slot = nil
	return err
}

// read receives one frame into buf[tagLen:] and its control messages
// into oob, returning the frame's full length and its packet type
// (unix.PACKET_OUTGOING: the host sent it). When none is queued it first
// flushes buffered output, so a reader of the file sees everything
// captured so far, then waits (rawsock's TryReadMsgType, then
// ReadMsgType).
func (c *Capture) read() (n, oobn int, pkttype uint8, err error) {
	b := c.buf[tagLen:]
	n, oobn, _, pkttype, err = c.conn.TryReadMsgType(b, c.oob)
	if !errors.Is(err, unix.EAGAIN) {
		return n, oobn, pkttype, err
	}
	if c.pw != nil && c.pw.Buffered() > 0 {
		if err := c.pw.Flush(); err != nil {
			return 0, 0, 0, &flushError{err}
		}
	}
	n, oobn, _, pkttype, err = c.conn.ReadMsgType(b, c.oob)
	return n, oobn, pkttype, err
}

// flushError is a failed write of the pcap output while reading.
type flushError struct{ err error }

func (e *flushError) Error() string { return "write capture: " + e.err.Error() }
func (e *flushError) Unwrap() error { return e.err }

// Run writes a capture file to w (header first, then one record per frame)
// until opt says stop, ctx is cancelled, or the interface disappears. A
// timeout or cancellation is a normal end and returns a nil error. The
// output is flushed before Run returns, a pcapng file ending with its
// statistics; w itself is not closed.
func (c *Capture) Run(ctx context.Context, w io.Writer, opt Options) (Stats, error) {
	var st Stats
	start := time.Now()
	if opt.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opt.Timeout)
		defer cancel()
	}
	dir := opt.Direction
	if dir != "in" && dir != "out" {
		dir = "both"
	}
	pw, err := pcapfile.NewWriter(w, opt.Format, pcapfile.Interface{Name: c.ifname, Snaplen: opt.Snaplen,
		Description: "vswctl capture --local (packet socket), direction " + dir})
	if err == nil {
		err = pw.Flush()
	}
	if err != nil {
		return st, fmt.Errorf("write %s header: %w", opt.Format, err)
	}
	c.pw = pw
	defer func() { c.pw = nil }()

	if err := c.conn.SetReadDeadline(time.Time{}); err != nil {
		return st, fmt.Errorf("capture on %s: %w", c.ifname, err)
	}
	// Cancellation wakes a blocked read by moving its deadline to the past.
	stop := context.AfterFunc(ctx, func() { _ = c.conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	err = c.loop(ctx, dir, opt.Count, &st)
	// Best effort: the drop count is advice for the operator.
	if s, serr := c.conn.Stats(); serr == nil {
		st.Drops = s.Drops
	}
	if err == nil {
		err = pw.WriteStats(pcapfile.Stats{Start: start, End: time.Now(), Received: uint64(st.Frames) + uint64(st.Drops),
			Dropped: uint64(st.Drops), Delivered: uint64(st.Frames),
			Comment: fmt.Sprintf("%d frames captured, %d dropped by the kernel", st.Frames, st.Drops)})
	}
	if ferr := pw.Flush(); ferr != nil && err == nil {
		err = fmt.Errorf("write capture: %w", ferr)
	}
	return st, err
}

func (c *Capture) loop(ctx context.Context, dir string, count int, st *Stats) error {
	down := false
	var unwatch func() // stops the link watcher, once started
	defer func() {
		if unwatch != nil {
			unwatch()
		}
	}()
	for count <= 0 || st.Frames < count {
		if ctx.Err() != nil {
			return nil
		}
		n, oobn, pkttype, err := c.read()
		var fe *flushError
		switch {
		case errors.As(err, &fe):
			return fe
		case errors.Is(err, os.ErrDeadlineExceeded):
			// Cancelled (ctx.Err is checked at the top), or the link
			// watcher of a down interface saw it deleted: has it gone?
			if down && ctx.Err() == nil {
				if err := c.recheckGone(ctx); err != nil {
					return err
				}
			}
			continue
		case err != nil:
			if !errors.Is(err, unix.ENETDOWN) {
				return fmt.Errorf("capture on %s: %w", c.ifname, err)
			}
			if err := c.checkGone(); err != nil {
				return err
			}
			// Down, not gone: keep waiting. The kernel says nothing to
			// this socket if the interface is deleted while down (the
			// socket is unhooked already), so a netlink watcher does.
			down = true
			if unwatch == nil {
				if unwatch, err = c.watchLink(); err != nil {
					return err
				}
				// It may have gone before the watcher started.
				if err := c.checkGone(); err != nil {
					return err
				}
			}
			continue
		}
		down = false
		d := pcapfile.Inbound
		if pkttype == unix.PACKET_OUTGOING {
			d = pcapfile.Outbound
		}
		if (dir == "in" && d != pcapfile.Inbound) || (dir == "out" && d != pcapfile.Outbound) {
			continue
		}
		if err := c.writeFrame(d, n, oobn); err != nil {
			return err
		}
		st.Frames++
	}
	return nil
}

// recheckGone runs when the read of a down interface was woken: by the link
// watcher, or spuriously. It reports ErrInterfaceGone, or re-arms the read.
func (c *Capture) recheckGone(ctx context.Context) error {
	c.linkEvent.Store(false)
	if err := c.checkGone(); err != nil {
		return err
	}
	if err := c.setDeadline(ctx, time.Time{}); err != nil {
		return err
	}
	// An event that came after checkGone but before the deadline was
	// cleared must not be lost: wake the read again.
	if c.linkEvent.Load() {
		return c.setDeadline(ctx, time.Unix(1, 0))
	}
	return nil
}

// watchLink subscribes to link events in the capture's namespace and,
// when the kernel reports the interface deleted or moved away (RTM_DELLINK
// for its index, sent after the socket was unbound), wakes the blocked
// read by moving its deadline to the past. The returned function stops it.
func (c *Capture) watchLink() (func(), error) {
	ch := make(chan netlink.LinkUpdate, 8)
	done := make(chan struct{})
	opts := netlink.LinkSubscribeOptions{Namespace: &c.netns}
	if err := netlink.LinkSubscribeWithOptions(ch, done, opts); err != nil {
		return nil, fmt.Errorf("capture on %s: watch link events: %w", c.ifname, err)
	}
	go func() {
		for u := range ch { // closed once done is
			if u.Header.Type == unix.RTM_DELLINK && int(u.Index) == c.ifindex {
				c.linkEvent.Store(true)
				_ = c.conn.SetReadDeadline(time.Unix(1, 0))
			}
		}
	}()
	return func() { close(done) }, nil
}

// setDeadline sets the read deadline without losing a cancellation that
// raced with it: context.AfterFunc marks ctx done before it moves the
// deadline, so a cancellation either happened before (ctx.Err, re-armed
// below) or will move the deadline after us.
func (c *Capture) setDeadline(ctx context.Context, t time.Time) error {
	if err := c.conn.SetReadDeadline(t); err != nil {
		return fmt.Errorf("capture on %s: %w", c.ifname, err)
	}
	if ctx.Err() != nil {
		_ = c.conn.SetReadDeadline(time.Unix(1, 0))
	}
	return nil
}

// checkGone reports ErrInterfaceGone when the kernel has unbound the socket
// from its interface (ifindex -1 after NETDEV_UNREGISTER).
func (c *Capture) checkGone() error {
	var sa unix.Sockaddr
	if err := c.conn.Control(func(fd int) error {
		var err error
		sa, err = unix.Getsockname(fd)
		return err
	}); err != nil {
		return fmt.Errorf("capture on %s: getsockname: %w", c.ifname, err)
	}
	if ll, ok := sa.(*unix.SockaddrLinklayer); ok && ll.Ifindex == c.ifindex {
		return nil
	}
	return fmt.Errorf("capture on %s: %w", c.ifname, ErrInterfaceGone)
}

// writeFrame turns the frame in buf[tagLen:tagLen+n] (n is its real length,
// maybe more than was read) into one record. It allocates nothing.
func (c *Capture) writeFrame(d pcapfile.Direction, n, oobn int) error {
	meta := parseCmsgs(c.oob[:oobn])
	caplen := min(n, Snaplen)
	data := c.buf[tagLen : tagLen+caplen]
	length := n
	if meta.vlanValid && caplen >= 12 {
		// Move the MAC addresses 4 bytes left and put the tag after them.
		copy(c.buf[0:12], c.buf[tagLen:tagLen+12])
		binary.BigEndian.PutUint16(c.buf[12:], meta.tpid)
		binary.BigEndian.PutUint16(c.buf[14:], meta.tci)
		caplen = min(caplen+tagLen, Snaplen)
		data = c.buf[:caplen]
		length += tagLen
	}
	ts := meta.ts
	if !meta.tsValid {
		ts = time.Now()
	}
	if err := c.pw.WritePacket(pcapfile.Packet{Time: ts, Dir: d, Data: data, Length: length}); err != nil {
		return fmt.Errorf("write capture: %w", err)
	}
	return nil
}

// frameMeta is what the control messages of one recvmsg say.
type frameMeta struct {
	ts        time.Time
	tsValid   bool
	vlanValid bool
	tpid, tci uint16
}

// Offsets in struct tpacket_auxdata (linux/if_packet.h).
const (
	auxStatusOff = 0
	auxTCIOff    = 16
	auxTPIDOff   = 18
	auxSize      = 20
)

// parseCmsgs walks the control messages in oob without allocating
// (unix.ParseSocketControlMessage returns a fresh slice per call).
func parseCmsgs(oob []byte) frameMeta {
	var m frameMeta
	hdr := unix.CmsgLen(0) // aligned header size
	for off := 0; off+unix.SizeofCmsghdr <= len(oob); {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[off]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || off+l > len(oob) {
			break
		}
		data := oob[off+hdr : off+l]
		switch {
		case h.Level == unix.SOL_PACKET && h.Type == unix.PACKET_AUXDATA && len(data) >= auxSize:
			status := binary.NativeEndian.Uint32(data[auxStatusOff:])
			if status&unix.TP_STATUS_VLAN_VALID != 0 {
				m.vlanValid = true
				m.tci = binary.NativeEndian.Uint16(data[auxTCIOff:])
				m.tpid = 0x8100
				if status&unix.TP_STATUS_VLAN_TPID_VALID != 0 {
					if tp := binary.NativeEndian.Uint16(data[auxTPIDOff:]); tp != 0 {
						m.tpid = tp
					}
				}
			}
		case h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && len(data) >= int(unsafe.Sizeof(unix.Timespec{})):
			ts := (*unix.Timespec)(unsafe.Pointer(&data[0]))
			m.ts = time.Unix(int64(ts.Sec), int64(ts.Nsec))
			m.tsValid = true
		}
		off += unix.CmsgSpace(l - hdr)
	}
	return m
}
