//go:build linux

package rawsock

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"testing"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vswitch/vswitch/test/topo"
)

// lab is a namespace with a veth pair a <-> b (both up).
type lab struct {
	ns   *topo.NS
	a, b string
}

func newLab(t *testing.T) *lab {
	t.Helper()
	l := &lab{ns: topo.VethNS(t, "rawsock", "rs0", "rs1"), a: "rs0", b: "rs1"} // skips unless root
	// Until linkwatch reports the carrier (asynchronously) the veth's qdisc
	// drops what is sent: wait for operstate up.
	deadline := time.Now().Add(3 * time.Second)
	for _, n := range []string{l.a, l.b} {
		for {
			lk, err := l.ns.Link(n)
			if err != nil {
				t.Fatal(err)
			}
			if lk.Attrs().OperState == netlink.OperUp {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not operationally up", n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return l
}

// listen opens a Conn on ifname inside the lab's namespace, closed at
// Cleanup.
func (l *lab) listen(t *testing.T, ifname string, proto uint16, cfg *Config) *Conn {
	t.Helper()
	var c *Conn
	err := l.ns.Do(func() error {
		idx, err := InterfaceIndex(ifname)
		if err != nil {
			return err
		}
		c, err = Listen(idx, Raw, proto, cfg)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xa}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xb}
)

// testFrame is a 60-byte frame from macB with ethertype 0x88b5 (local
// experimental) and seq in its payload.
func testFrame(seq byte, tags ...uint16) []byte {
	f := append(append([]byte{}, macA...), macB...)
	for _, tci := range tags {
		f = binary.BigEndian.AppendUint16(f, 0x8100)
		f = binary.BigEndian.AppendUint16(f, tci)
	}
	f = append(f, 0x88, 0xb5, seq)
	return append(f, make([]byte, 60-len(f))...)
}

// send transmits f out of c's interface (the tests' writer: the package
// has no write path of its own, its users send through rings or not at all).
func send(t *testing.T, c *Conn, f []byte) {
	t.Helper()
	if err := c.Control(func(fd int) error {
		return unix.Sendto(fd, f, 0, &unix.SockaddrLinklayer{Ifindex: c.Ifindex(), Halen: 6})
	}); err != nil {
		t.Fatalf("send: %v", err)
	}
}

// readFrame reads one frame without its control messages.
func readFrame(c *Conn, b []byte) (int, error) {
	n, _, _, err := c.ReadMsg(b, nil)
	return n, err
}

// readFromB reads until a frame from macB arrives (the kernel may send
// its own, IPv6 router solicitations and such) or the deadline passes.
func readFromB(t *testing.T, c *Conn, buf []byte, d time.Duration) int {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(d)); err != nil {
		t.Fatal(err)
	}
	defer c.SetReadDeadline(time.Time{})
	for {
		n, err := readFrame(c, buf)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if n >= 14 && bytes.Equal(buf[6:12], macB) {
			return n
		}
	}
}

// A frame written on one end of a veth is read on the other, byte for
// byte; the tag the kernel moved out of a tagged frame comes back in
// PACKET_AUXDATA; a short buffer gets the frame's start, its full length
// and MSG_TRUNC.
func TestFrameCrossesVeth(t *testing.T) {
	l := newLab(t)
	rx := l.listen(t, l.a, unix.ETH_P_ALL, nil)
	if err := rx.SetIgnoreOutgoing(true); err != nil {
		t.Fatal(err)
	}
	if err := rx.SetAuxdata(true); err != nil {
		t.Fatal(err)
	}
	tx := l.listen(t, l.b, 0, nil) // sends only
	want := testFrame(1)
	send(t, tx, want)
	buf := make([]byte, 2048)
	if err := rx.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
		t.Fatal(err)
	}
	for {
		n, err := readFrame(rx, buf)
		if err != nil {
			t.Fatalf("ReadMsg: %v", err)
		}
		if !bytes.Equal(buf[6:12], macB) {
			continue
		}
		if !bytes.Equal(buf[:n], want) {
			t.Errorf("got %x\nwant %x", buf[:n], want)
		}
		break
	}

	// A tagged frame: the kernel holds the tag out of band.
	tagged := testFrame(2, 5<<13|100)
	send(t, tx, tagged)
	oob := make([]byte, 256)
	for {
		n, oobn, flags, err := rx.ReadMsg(buf, oob)
		if err != nil {
			t.Fatalf("ReadMsg: %v", err)
		}
		if !bytes.Equal(buf[6:12], macB) {
			continue
		}
		if flags&unix.MSG_TRUNC != 0 {
			t.Errorf("flags %#x: MSG_TRUNC on a frame that fits", flags)
		}
		tpid, tci, ok := auxVLAN(t, oob[:oobn])
		if !ok || tpid != 0x8100 || tci != 5<<13|100 {
			t.Errorf("auxdata tag %#x/%#x (valid %v), want 0x8100/%#x", tpid, tci, ok, 5<<13|100)
		}
		if w := append(append([]byte{}, tagged[:12]...), tagged[16:]...); !bytes.Equal(buf[:n], w) {
			t.Errorf("frame %x\nwant it without the tag %x", buf[:n], w)
		}
		break
	}

	send(t, tx, testFrame(3))
	small := make([]byte, 20)
	for {
		n, _, flags, err := rx.ReadMsg(small, nil)
		if err != nil {
			t.Fatalf("ReadMsg: %v", err)
		}
		if !bytes.Equal(small[6:12], macB) {
			continue
		}
		if n != 60 || flags&unix.MSG_TRUNC == 0 {
			t.Errorf("60-byte frame into 20 bytes: n %d flags %#x, want 60 and MSG_TRUNC", n, flags)
		}
		if want := testFrame(3)[:20]; !bytes.Equal(small, want) {
			t.Errorf("cut frame %x, want %x", small, want)
		}
		break
	}
}

func auxVLAN(t *testing.T, oob []byte) (tpid, tci uint16, ok bool) {
	t.Helper()
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		t.Fatalf("control messages: %v", err)
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_PACKET && m.Header.Type == unix.PACKET_AUXDATA {
			aux := (*unix.TpacketAuxdata)(unsafe.Pointer(&m.Data[0]))
			return aux.Vlan_tpid, aux.Vlan_tci, aux.Status&unix.TP_STATUS_VLAN_VALID != 0
		}
	}
	return 0, 0, false
}

// A read past its deadline fails at once with a timeout that matches
// os.ErrDeadlineExceeded, and the Conn keeps working afterwards.
func TestReadDeadline(t *testing.T) {
	l := newLab(t)
	c := l.listen(t, l.a, 0x88b6, nil) // an ethertype nobody sends
	start := time.Now()
	if err := c.SetReadDeadline(start.Add(100 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	_, err := readFrame(c, make([]byte, 2048))
	el := time.Since(start)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v, want os.ErrDeadlineExceeded", err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("error %v is not a net.Error with Timeout()", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" || oe.Net != "packet" {
		t.Errorf("error %#v, want a *net.OpError read/packet", err)
	}
	if el < 90*time.Millisecond || el > 2*time.Second {
		t.Errorf("read returned after %v, want about 100ms", el)
	}
	// A deadline in the past fails at once too; a cleared one waits again.
	if err := c.SetReadDeadline(time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := readFrame(c, make([]byte, 64)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read with a past deadline: %v", err)
	}
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Bind(unix.ETH_P_ALL); err != nil {
		t.Fatal(err)
	}
	tx := l.listen(t, l.b, 0, nil)
	send(t, tx, testFrame(1))
	readFromB(t, c, make([]byte, 2048), 2*time.Second)
}

// TryReadMsg returns at once, EAGAIN when nothing is queued and the frame
// when one is; it leaves a later ReadMsg waiting as before.
func TestTryReadMsg(t *testing.T) {
	l := newLab(t)
	c := l.listen(t, l.a, 0x88b5, nil)
	buf := make([]byte, 2048)
	start := time.Now()
	if _, _, _, err := c.TryReadMsg(buf, nil); !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("TryReadMsg on an empty socket: %v, want EAGAIN", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("TryReadMsg waited %v", el)
	}
	tx := l.listen(t, l.b, 0, nil)
	send(t, tx, testFrame(9))
	deadline := time.Now().Add(2 * time.Second)
	for {
		n, _, _, err := c.TryReadMsg(buf, nil)
		if errors.Is(err, unix.EAGAIN) && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
			continue
		}
		if err != nil || n != 60 || buf[14] != 9 {
			t.Fatalf("TryReadMsg = %d, %v (%x), want frame 9", n, err, buf[:n])
		}
		break
	}
	send(t, tx, testFrame(10))
	if n := readFromB(t, c, buf, 2*time.Second); buf[14] != 10 {
		t.Errorf("ReadMsg after TryReadMsg got %x, want frame 10", buf[:n])
	}
}

// Close wakes a Read blocked in another goroutine with net.ErrClosed; what
// follows fails the same way, and a second Close is harmless.
func TestCloseUnblocksRead(t *testing.T) {
	l := newLab(t)
	c := l.listen(t, l.a, 0x88b6, nil)
	done := make(chan error, 1)
	go func() {
		_, err := readFrame(c, make([]byte, 2048))
		done <- err
	}()
	time.Sleep(50 * time.Millisecond) // let it block
	select {
	case err := <-done:
		t.Fatalf("read returned before Close: %v", err)
	default:
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("blocked read after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not wake the blocked read")
	}
	if _, err := readFrame(c, make([]byte, 64)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("read after Close: %v, want net.ErrClosed", err)
	}
	if err := c.SetPromiscuous(true); !errors.Is(err, net.ErrClosed) {
		t.Errorf("option after Close: %v, want net.ErrClosed", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// Protocol 0 receives nothing, whatever arrives, until Bind names one.
func TestProtocolZeroReceivesNothingUntilBind(t *testing.T) {
	l := newLab(t)
	c := l.listen(t, l.a, 0, nil)
	tx := l.listen(t, l.b, 0, nil)
	send(t, tx, testFrame(1))
	if err := c.SetReadDeadline(time.Now().Add(200 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if n, err := readFrame(c, make([]byte, 2048)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("protocol 0 read %d bytes (%v), want nothing", n, err)
	}
	if err := c.Bind(0x88b5); err != nil {
		t.Fatal(err)
	}
	send(t, tx, testFrame(2))
	buf := make([]byte, 2048)
	if n := readFromB(t, c, buf, 2*time.Second); buf[14] != 2 {
		t.Errorf("after Bind got %x, want frame 2", buf[:n])
	}
}

// promiscuity reads the interface's promiscuity count.
func (l *lab) promiscuity(t *testing.T, ifname string) int {
	t.Helper()
	lk, err := l.ns.Link(ifname)
	if err != nil {
		t.Fatal(err)
	}
	return lk.Attrs().Promisc
}

// A promiscuous membership counts while held, and goes with the socket.
func TestPromiscuousMembership(t *testing.T) {
	l := newLab(t)
	if p := l.promiscuity(t, l.a); p != 0 {
		t.Fatalf("promiscuity %d on a new veth", p)
	}
	c := l.listen(t, l.a, 0, &Config{Unpolled: true})
	if err := c.SetPromiscuous(true); err != nil {
		t.Fatal(err)
	}
	if p := l.promiscuity(t, l.a); p != 1 {
		t.Errorf("promiscuity %d with the membership, want 1", p)
	}
	if err := c.SetPromiscuous(false); err != nil {
		t.Fatal(err)
	}
	if p := l.promiscuity(t, l.a); p != 0 {
		t.Errorf("promiscuity %d after dropping the membership, want 0", p)
	}
	if err := c.SetPromiscuous(true); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if p := l.promiscuity(t, l.a); p != 0 {
		t.Errorf("promiscuity %d after Close, want 0", p)
	}
}

// Frames the host sends on the interface reach an ETH_P_ALL socket unless
// it ignores outgoing frames.
func TestIgnoreOutgoing(t *testing.T) {
	l := newLab(t)
	all := l.listen(t, l.a, unix.ETH_P_ALL, nil)
	quiet := l.listen(t, l.a, unix.ETH_P_ALL, nil)
	if err := quiet.SetIgnoreOutgoing(true); err != nil {
		t.Fatal(err)
	}
	tx := l.listen(t, l.a, 0, nil)
	out := testFrame(7)
	copy(out[6:12], macA) // from A, out of A
	send(t, tx, out)
	buf := make([]byte, 2048)
	seen := func(c *Conn) bool {
		if err := c.SetReadDeadline(time.Now().Add(300 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		for {
			n, err := readFrame(c, buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return false
			}
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(buf[:n], out) {
				return true
			}
		}
	}
	if !seen(all) {
		t.Error("an ETH_P_ALL socket did not see the host's own frame")
	}
	if seen(quiet) {
		t.Error("PACKET_IGNORE_OUTGOING socket saw the host's own frame")
	}
}

// Unpolled sockets leave waiting to the caller: no reads or deadlines,
// but Control works.
func TestUnpolled(t *testing.T) {
	l := newLab(t)
	c := l.listen(t, l.a, 0, &Config{Unpolled: true})
	if _, err := readFrame(c, make([]byte, 64)); !errors.Is(err, ErrUnpolled) {
		t.Errorf("read: %v, want ErrUnpolled", err)
	}
	if _, _, _, err := c.TryReadMsg(make([]byte, 64), nil); !errors.Is(err, ErrUnpolled) {
		t.Errorf("try read: %v, want ErrUnpolled", err)
	}
	if err := c.SetReadDeadline(time.Now()); !errors.Is(err, ErrUnpolled) {
		t.Errorf("deadline: %v, want ErrUnpolled", err)
	}
	var nonblock bool
	if err := c.Control(func(fd int) error {
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		nonblock = fl&unix.O_NONBLOCK != 0
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if nonblock {
		t.Error("unpolled socket is non-blocking")
	}
	if c.Ifindex() == 0 {
		t.Error("no ifindex")
	}
}

// ReadMsg and TryReadMsg allocate nothing per frame.
func TestReadAllocatesNothing(t *testing.T) {
	l := newLab(t)
	rx := l.listen(t, l.a, 0x88b5, nil)
	if err := rx.SetAuxdata(true); err != nil {
		t.Fatal(err)
	}
	if err := rx.Control(func(fd int) error { return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20) }); err != nil {
		t.Fatal(err)
	}
	tx := l.listen(t, l.b, 0, nil)
	const runs = 100
	for i := 0; i < 2*runs+10; i++ { // AllocsPerRun runs each function once more
		send(t, tx, testFrame(byte(i)))
	}
	buf, oob := make([]byte, 2048), make([]byte, 256)
	readFromB(t, rx, buf, 2*time.Second) // the first is in
	if err := rx.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(runs, func() {
		if _, _, _, err := rx.ReadMsg(buf, oob); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("ReadMsg allocates %v times per frame", n)
	}
	if n := testing.AllocsPerRun(runs, func() {
		if _, _, _, err := rx.TryReadMsg(buf, oob); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("TryReadMsg allocates %v times per frame", n)
	}
	st, err := rx.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Packets < 2*runs || st.Drops != 0 {
		t.Errorf("stats %+v, want >= %d packets and no drops", st, 2*runs)
	}
}

// InterfaceIndex resolves in the calling thread's namespace.
func TestInterfaceIndex(t *testing.T) {
	l := newLab(t)
	want, err := l.ns.Index(l.a)
	if err != nil {
		t.Fatal(err)
	}
	var got int
	var missing error
	if err := l.ns.Do(func() error {
		got, err = InterfaceIndex(l.a)
		_, missing = InterfaceIndex("rs-none")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("index %d, want %d", got, want)
	}
	if !errors.Is(missing, unix.ENODEV) {
		t.Errorf("missing interface: %v, want ENODEV", missing)
	}
}
