//go:build linux

package afpacket

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"github.com/vswitch/vswitch/pkg/backend"
	"golang.org/x/sys/unix"
)

// testNet is a network namespace holding one veth pair "va" <-> "vb",
// created for one test and removed by t.Cleanup.
type testNet struct {
	tb   testing.TB
	name string
	ns   netns.NsHandle
}

func needRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root: creates network namespaces, veth pairs and packet sockets")
	}
}

func newTestNet(tb testing.TB) *testNet {
	tb.Helper()
	needRoot(tb)
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	name := fmt.Sprintf("afpt-%d-%s", os.Getpid(), hex.EncodeToString(rnd[:]))
	n := &testNet{tb: tb, name: name}
	runIP(tb, "netns", "add", name)
	tb.Cleanup(func() {
		if n.ns.IsOpen() {
			_ = n.ns.Close()
		}
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			tb.Logf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	h, err := netns.GetFromName(name)
	if err != nil {
		tb.Fatalf("open netns %s: %v", name, err)
	}
	n.ns = h
	// No IPv6: no DAD/MLD frames from the kernel while we count ours.
	if err := n.do(func() error {
		for _, f := range []string{"all", "default"} {
			p := "/proc/sys/net/ipv6/conf/" + f + "/disable_ipv6"
			if err := os.WriteFile(p, []byte("1"), 0o644); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
		return nil
	}); err != nil {
		tb.Fatalf("disable ipv6 in %s: %v", name, err)
	}
	n.ip("link", "add", "va", "type", "veth", "peer", "name", "vb")
	n.ip("link", "set", "va", "up")
	n.ip("link", "set", "vb", "up")
	n.waitUp("va")
	n.waitUp("vb")
	return n
}

// waitUp waits until linkwatch has marked the link operationally up: until
// then the device still has the noop qdisc, which silently drops frames
// sent through the qdisc layer (our raw test sockets; Queue.Send bypasses
// it).
func (n *testNet) waitUp(ifname string) {
	n.tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, err := exec.Command("ip", "-n", n.name, "-o", "link", "show", "dev", ifname).CombinedOutput()
		if err == nil && strings.Contains(string(out), "state UP") && !strings.Contains(string(out), "qdisc noop") {
			return
		}
		if time.Now().After(deadline) {
			n.tb.Fatalf("%s not up after 5s: %s", ifname, out)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func runIP(tb testing.TB, args ...string) {
	tb.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		tb.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// ip runs an ip(8) command inside the namespace.
func (n *testNet) ip(args ...string) {
	n.tb.Helper()
	runIP(n.tb, append([]string{"-n", n.name}, args...)...)
}

// do runs fn on a locked OS thread switched into the namespace. Sockets
// created by fn stay in the namespace. If the thread cannot be switched
// back it is left locked, so the runtime discards it when the goroutine
// ends.
func (n *testNet) do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("get current netns: %w", err)
			return
		}
		if err := netns.Set(n.ns); err != nil {
			_ = orig.Close()
			errc <- fmt.Errorf("enter netns %s: %w", n.name, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			_ = orig.Close()
			// the thread stays locked and dies with the goroutine
			errc <- errors.Join(ferr, fmt.Errorf("restore netns: %w", err))
			return
		}
		_ = orig.Close() // before answering: callers count open fds
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// open opens a queue inside the namespace and closes it at cleanup.
func (n *testNet) open(b *Backend, ifname string, cfg backend.QueueConfig) *Queue {
	n.tb.Helper()
	q, err := n.tryOpen(b, ifname, cfg)
	if err != nil {
		n.tb.Fatalf("open %s %s: %v", ifname, cfg.Role, err)
	}
	n.tb.Cleanup(func() { _ = q.Close() })
	return q
}

func (n *testNet) tryOpen(b *Backend, ifname string, cfg backend.QueueConfig) (*Queue, error) {
	var q *Queue
	err := n.do(func() error {
		var err error
		q, err = b.OpenQueue(ifname, cfg)
		return err
	})
	return q, err
}

// tap creates tap name in the namespace (IFF_TAP|IFF_NO_PI|IFF_VNET_HDR,
// as libvirt makes them for vhost-net), sets it up and returns its
// descriptor: the VM's side. Each write is one frame behind a 10-byte
// struct virtio_net_hdr, which the kernel turns into skb GSO and checksum
// state as it does for a guest. Closing the descriptor (at cleanup)
// deletes the device.
func (n *testNet) tap(name string) int {
	n.tb.Helper()
	fd := -1
	err := n.do(func() error {
		var err error
		if fd, err = unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0); err != nil {
			return fmt.Errorf("open /dev/net/tun: %w", err)
		}
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			return err
		}
		ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			return fmt.Errorf("TUNSETIFF: %w", err)
		}
		return nil
	})
	if err != nil {
		if fd >= 0 {
			_ = unix.Close(fd)
		}
		n.tb.Fatalf("tap %s: %v", name, err)
	}
	n.tb.Cleanup(func() { _ = unix.Close(fd) })
	// A tap reports state UNKNOWN, not UP, and frames written to its
	// descriptor do not pass a qdisc: no waitUp.
	n.ip("link", "set", name, "up")
	return fd
}

// vnetHdr is the struct virtio_net_hdr a VM writes in front of a frame.
type vnetHdr struct {
	flags, gsoType        uint8
	hdrLen, gsoSize       uint16
	csumStart, csumOffset uint16
}

// tapWrite writes frame to a tap descriptor behind h.
func tapWrite(tb testing.TB, fd int, h vnetHdr, frame []byte) {
	tb.Helper()
	buf := make([]byte, vnetHdrLen+len(frame))
	ne := binary.NativeEndian
	buf[vnetFlagsOff] = h.flags
	buf[vnetGSOTypeOff] = h.gsoType
	ne.PutUint16(buf[2:], h.hdrLen)
	ne.PutUint16(buf[vnetGSOSizeOff:], h.gsoSize)
	ne.PutUint16(buf[6:], h.csumStart)
	ne.PutUint16(buf[8:], h.csumOffset)
	copy(buf[vnetHdrLen:], frame)
	if _, err := unix.Write(fd, buf); err != nil {
		tb.Fatalf("write %d bytes to the tap: %v", len(buf), err)
	}
}

// rawSock is a plain packet socket for sending test frames (and, with
// listen, receiving without any of our options).
type rawSock struct {
	fd      int
	ifindex int
}

func (n *testNet) raw(ifname string, listen bool) *rawSock {
	n.tb.Helper()
	var s rawSock
	err := n.do(func() error {
		proto := 0
		if listen {
			proto = int(htons(unix.ETH_P_ALL))
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return err
		}
		s.fd = fd
		ifr, err := unix.NewIfreq(ifname)
		if err != nil {
			return err
		}
		if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
			return err
		}
		s.ifindex = int(ifr.Uint32())
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: s.ifindex})
	})
	if err != nil {
		n.tb.Fatalf("raw socket on %s: %v", ifname, err)
	}
	n.tb.Cleanup(func() { _ = unix.Close(s.fd) })
	return &s
}

func (s *rawSock) send(tb testing.TB, frames ...[]byte) {
	tb.Helper()
	for _, f := range frames {
		if _, err := unix.Write(s.fd, f); err != nil {
			tb.Fatalf("raw send of %d bytes: %v", len(f), err)
		}
	}
}

// recvMatching reads frames with our test source MAC until timeout.
func (s *rawSock) recvMatching(timeout time.Duration) [][]byte {
	var out [][]byte
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 4096)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return out
		}
		tv := unix.NsecToTimeval(left.Nanoseconds())
		_ = unix.SetsockoptTimeval(s.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		n, _, err := unix.Recvfrom(s.fd, buf, 0)
		if err != nil {
			continue
		}
		if isTestFrame(buf[:n]) {
			out = append(out, append([]byte(nil), buf[:n]...))
		}
	}
}

// Test frames carry source MAC 02:aa:bb:cc:dd:xx.
var testSrcPrefix = []byte{0x02, 0xaa, 0xbb, 0xcc, 0xdd}

func isTestFrame(f []byte) bool { return len(f) >= 12 && bytes.Equal(f[6:11], testSrcPrefix) }

type tag struct{ tpid, tci uint16 }

// ethFrame builds dst | src | tags... | ethertype | payload. The payload is
// filled with a pattern and a sequence number so frames differ.
func ethFrame(seq int, tags []tag, etype uint16, payloadLen int) []byte {
	f := []byte{0x02, 0xaa, 0xbb, 0xcc, 0xee, 0x01, 0x02, 0xaa, 0xbb, 0xcc, 0xdd, byte(seq)}
	for _, t := range tags {
		f = binary.BigEndian.AppendUint16(f, t.tpid)
		f = binary.BigEndian.AppendUint16(f, t.tci)
	}
	f = binary.BigEndian.AppendUint16(f, etype)
	for i := 0; i < payloadLen; i++ {
		f = append(f, byte(seq*7+i))
	}
	if payloadLen >= 4 {
		binary.BigEndian.PutUint32(f[len(f)-payloadLen:], uint32(seq))
	}
	return f
}

// udpFrame builds an untagged IPv4/UDP frame with a valid header checksum.
func udpFrame(seq int, srcIP, dstIP [4]byte, sport, dport uint16, payloadLen int) []byte {
	f := ethFrame(seq, nil, 0x0800, 0)
	ip := make([]byte, 20)
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+payloadLen))
	ip[8] = 64
	ip[9] = 17
	copy(ip[12:], srcIP[:])
	copy(ip[16:], dstIP[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	f = append(f, ip...)
	udp := make([]byte, 8+payloadLen)
	binary.BigEndian.PutUint16(udp[0:], sport)
	binary.BigEndian.PutUint16(udp[2:], dport)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+payloadLen))
	binary.BigEndian.PutUint32(udp[8:], uint32(seq))
	return append(f, udp...)
}

// rxFrame is a received test frame and facts about its batch slot.
type rxFrame struct {
	data []byte
	off  int
}

// collect runs Recv in a goroutine until the queue is closed and sends a
// copy of every test frame on the returned channel. The final Recv error
// is sent on errc.
func collect(q *Queue) (<-chan rxFrame, <-chan error) {
	ch := make(chan rxFrame, 4096)
	errc := make(chan error, 1)
	go func() {
		b := backend.NewBatch(backend.DefaultBatch)
		for {
			n, err := q.Recv(b)
			if err != nil {
				errc <- err
				return
			}
			for i := 0; i < n; i++ {
				f := b.Frame(i)
				if isTestFrame(f) {
					ch <- rxFrame{data: append([]byte(nil), f...), off: b.Off[i]}
				}
			}
			q.Release(b)
		}
	}()
	return ch, errc
}

// expectFrames reads n frames or fails after timeout.
func expectFrames(tb testing.TB, ch <-chan rxFrame, n int, timeout time.Duration) []rxFrame {
	tb.Helper()
	out := readFrames(ch, n, timeout)
	if len(out) < n {
		tb.Fatalf("got %d of %d frames before timeout", len(out), n)
	}
	return out
}

// readFrames reads up to n frames, giving up after timeout.
func readFrames(ch <-chan rxFrame, n int, timeout time.Duration) []rxFrame {
	out := make([]rxFrame, 0, n)
	deadline := time.After(timeout)
	for len(out) < n {
		select {
		case f := <-ch:
			out = append(out, f)
		case <-deadline:
			return out
		}
	}
	return out
}

// expectNone fails if a frame arrives within d.
func expectNone(tb testing.TB, ch <-chan rxFrame, d time.Duration, what string) {
	tb.Helper()
	select {
	case f := <-ch:
		tb.Fatalf("%s: unexpected frame % x", what, f.data)
	case <-time.After(d):
	}
}
