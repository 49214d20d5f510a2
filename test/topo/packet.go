package topo

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Frame is one frame read from a PacketConn.
type Frame struct {
	// Data is the frame as it was on the wire: if the kernel had moved a
	// VLAN tag into metadata it is put back at offset 12.
	Data []byte
	// Outgoing is true for frames this host sent on the interface.
	Outgoing bool
	// PktType is the sockaddr_ll packet type (unix.PACKET_HOST, ...).
	PktType uint8
	// Time is when the frame was read.
	Time time.Time
}

// PacketConn is an AF_PACKET SOCK_RAW socket bound to one interface in a
// namespace. Reads rebuild VLAN tags from PACKET_AUXDATA.
type PacketConn struct {
	Ifname   string
	Ifindex  int
	f        *os.File
	rc       syscall.RawConn
	outgoing bool
	buf      []byte
	oob      []byte
	rmu      sync.Mutex
}

// PacketOption changes how PacketConn and Capture open their socket.
type PacketOption func(*packetOpts)

type packetOpts struct{ outgoing, set bool }

// WithOutgoing includes (true) or excludes (false) frames this host sends
// on the interface. PacketConn excludes them by default, Capture includes
// them (and marks them Frame.Outgoing).
func WithOutgoing(on bool) PacketOption {
	return func(o *packetOpts) { o.outgoing, o.set = on, true }
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// PacketConn opens an AF_PACKET socket inside the namespace bound to ifname.
// When n belongs to a Topo the socket is closed at Cleanup.
func (n *NS) PacketConn(ifname string, opts ...PacketOption) (*PacketConn, error) {
	var o packetOpts
	for _, opt := range opts {
		opt(&o)
	}
	return n.packetConn(ifname, o.outgoing)
}

func (n *NS) packetConn(ifname string, outgoing bool) (*PacketConn, error) {
	idx, err := n.Index(ifname)
	if err != nil {
		return nil, err
	}
	var fd int
	err = n.Do(func() error {
		var err error
		// Protocol 0: receive nothing until bound to the interface, so no
		// frame from another interface sneaks in between socket and bind.
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("socket: %w", err)
		}
		if err := setupPacketSocket(fd, idx, outgoing); err != nil {
			unix.Close(fd)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("packet socket on %s in %s: %w", ifname, n, err)
	}
	f := os.NewFile(uintptr(fd), "packet:"+ifname)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("packet socket on %s: %w", ifname, err)
	}
	c := &PacketConn{
		Ifname: ifname, Ifindex: idx, f: f, rc: rc, outgoing: outgoing,
		buf: make([]byte, 65536+4), oob: make([]byte, unix.CmsgSpace(int(unsafe.Sizeof(unix.TpacketAuxdata{})))),
	}
	if n.topo != nil {
		n.topo.Defer("close packet socket on "+ifname, func() error { _ = c.Close(); return nil })
	}
	return c, nil
}

func setupPacketSocket(fd, ifindex int, outgoing bool) error {
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
		return fmt.Errorf("PACKET_AUXDATA: %w", err)
	}
	if !outgoing {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
			return fmt.Errorf("PACKET_IGNORE_OUTGOING: %w", err)
		}
	}
	// Generous buffer: captures of bursts must not drop.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20)
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}
	if err := unix.Bind(fd, sa); err != nil {
		return fmt.Errorf("bind ifindex %d: %w", ifindex, err)
	}
	return nil
}

// WriteFrame sends one complete Ethernet frame out of the interface.
func (c *PacketConn) WriteFrame(frame []byte) error {
	var werr error
	err := c.rc.Write(func(fd uintptr) bool {
		_, werr = unix.Write(int(fd), frame)
		return werr != unix.EAGAIN
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		return fmt.Errorf("write frame on %s: %w", c.Ifname, err)
	}
	return nil
}

// ErrTimeout is returned (wrapped) by reads whose deadline passed.
var ErrTimeout = os.ErrDeadlineExceeded

// ReadFrame waits up to timeout for the next frame and returns a copy of it,
// with its VLAN tag rebuilt. timeout <= 0 waits forever.
func (c *PacketConn) ReadFrame(timeout time.Duration) ([]byte, error) {
	fr, err := c.ReadFrameInfo(timeout)
	return fr.Data, err
}

// ReadFrameInfo is ReadFrame with direction and packet type.
func (c *PacketConn) ReadFrameInfo(timeout time.Duration) (Frame, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	var dl time.Time
	if timeout > 0 {
		dl = time.Now().Add(timeout)
	}
	if err := c.f.SetReadDeadline(dl); err != nil {
		return Frame{}, fmt.Errorf("read frame on %s: %w", c.Ifname, err)
	}
	var (
		n, oobn int
		from    unix.Sockaddr
		rerr    error
	)
	err := c.rc.Read(func(fd uintptr) bool {
		n, oobn, _, from, rerr = unix.Recvmsg(int(fd), c.buf[4:], c.oob, unix.MSG_TRUNC)
		return rerr != unix.EAGAIN
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return Frame{}, fmt.Errorf("read frame on %s: %w", c.Ifname, err)
	}
	if n > len(c.buf)-4 {
		return Frame{}, fmt.Errorf("read frame on %s: frame of %d bytes truncated", c.Ifname, n)
	}
	fr := Frame{Time: time.Now()}
	if sll, ok := from.(*unix.SockaddrLinklayer); ok {
		fr.PktType = sll.Pkttype
		fr.Outgoing = sll.Pkttype == unix.PACKET_OUTGOING
	}
	fr.Data = rebuildTag(c.buf[4:4+n], c.oob[:oobn])
	return fr, nil
}

// rebuildTag returns a copy of frame with the VLAN tag from the
// PACKET_AUXDATA control message (if any) inserted after the MAC addresses.
func rebuildTag(frame, oob []byte) []byte {
	tpid, tci, ok := auxVLAN(oob)
	if !ok || len(frame) < 12 {
		return append([]byte(nil), frame...)
	}
	out := make([]byte, len(frame)+4)
	copy(out, frame[:12])
	binary.BigEndian.PutUint16(out[12:], tpid)
	binary.BigEndian.PutUint16(out[14:], tci)
	copy(out[16:], frame[12:])
	return out
}

// auxVLAN extracts the VLAN tag the kernel stripped, from PACKET_AUXDATA.
func auxVLAN(oob []byte) (tpid, tci uint16, ok bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, 0, false
	}
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_PACKET || m.Header.Type != unix.PACKET_AUXDATA {
			continue
		}
		if len(m.Data) < int(unsafe.Sizeof(unix.TpacketAuxdata{})) {
			continue
		}
		aux := (*unix.TpacketAuxdata)(unsafe.Pointer(&m.Data[0]))
		if aux.Status&unix.TP_STATUS_VLAN_VALID == 0 {
			return 0, 0, false
		}
		tpid = 0x8100
		if aux.Status&unix.TP_STATUS_VLAN_TPID_VALID != 0 && aux.Vlan_tpid != 0 {
			tpid = aux.Vlan_tpid
		}
		return tpid, aux.Vlan_tci, true
	}
	return 0, 0, false
}

// Close closes the socket; a blocked read returns an error.
func (c *PacketConn) Close() error {
	err := c.f.Close()
	if errors.Is(err, os.ErrClosed) {
		return nil
	}
	return err
}

// Capture collects frames from one interface in the background until Stop.
type Capture struct {
	c      *PacketConn
	mu     sync.Mutex
	cond   *sync.Cond
	frames []Frame
	done   chan struct{}
	err    error
}

// Capture starts collecting every frame seen on ifname inside the namespace
// (both directions unless WithOutgoing(false)). When n belongs to a Topo the
// capture is stopped at Cleanup.
func (n *NS) Capture(ifname string, opts ...PacketOption) (*Capture, error) {
	o := packetOpts{outgoing: true}
	for _, opt := range opts {
		opt(&o)
	}
	c, err := n.packetConn(ifname, o.outgoing)
	if err != nil {
		return nil, err
	}
	cp := &Capture{c: c, done: make(chan struct{})}
	cp.cond = sync.NewCond(&cp.mu)
	go cp.loop()
	return cp, nil
}

func (cp *Capture) loop() {
	defer close(cp.done)
	for {
		fr, err := cp.c.ReadFrameInfo(0)
		cp.mu.Lock()
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				cp.err = err
			}
			cp.cond.Broadcast()
			cp.mu.Unlock()
			return
		}
		cp.frames = append(cp.frames, fr)
		cp.cond.Broadcast()
		cp.mu.Unlock()
	}
}

// Frames returns a snapshot of the frames collected so far.
func (cp *Capture) Frames() []Frame {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return append([]Frame(nil), cp.frames...)
}

// Stop ends the capture and returns every frame collected.
func (cp *Capture) Stop() []Frame {
	_ = cp.c.Close()
	<-cp.done
	return cp.Frames()
}

// Err returns the read error that ended the capture early, if any.
func (cp *Capture) Err() error {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return cp.err
}

// WaitFor waits until the capture holds a frame for which match returns
// true and returns it, or returns an error after timeout.
func (cp *Capture) WaitFor(timeout time.Duration, match func(Frame) bool) (Frame, error) {
	dl := time.Now().Add(timeout)
	// Wake the waiter when the deadline passes.
	t := time.AfterFunc(timeout, func() {
		cp.mu.Lock()
		cp.cond.Broadcast()
		cp.mu.Unlock()
	})
	defer t.Stop()
	cp.mu.Lock()
	defer cp.mu.Unlock()
	seen := 0
	for {
		for ; seen < len(cp.frames); seen++ {
			if match(cp.frames[seen]) {
				return cp.frames[seen], nil
			}
		}
		select {
		case <-cp.done:
			return Frame{}, fmt.Errorf("capture on %s ended: %v", cp.c.Ifname, cp.err)
		default:
		}
		if !time.Now().Before(dl) {
			return Frame{}, fmt.Errorf("no matching frame on %s within %v (%d frames seen): %w", cp.c.Ifname, timeout, len(cp.frames), ErrTimeout)
		}
		cp.cond.Wait()
	}
}
