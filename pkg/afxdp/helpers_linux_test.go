//go:build linux

package afxdp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"github.com/vswitch/vswitch/pkg/backend"
	"golang.org/x/sys/unix"
)

// topo is a network namespace holding a veth pair: A carries the AF_XDP
// queue under test, B is the peer the test talks through.
type topo struct {
	name       string
	ns         netns.NsHandle
	a, b       string
	aIdx, bIdx int
}

func requireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root (network namespaces, veth, XDP)")
	}
}

// inNS runs f on a locked thread switched into ns.
func inNS(tb testing.TB, ns netns.NsHandle, f func()) {
	tb.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		tb.Fatalf("get current netns: %v", err)
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		tb.Fatalf("enter netns: %v", err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			panic(fmt.Sprintf("restore netns: %v", err))
		}
	}()
	f()
}

func newTopo(tb testing.TB) *topo {
	tb.Helper()
	requireRoot(tb)
	t := &topo{name: fmt.Sprintf("afxdp-%d-%x", os.Getpid(), rand.Uint32()), a: "xska", b: "xskb"}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		tb.Fatalf("get netns: %v", err)
	}
	t.ns, err = netns.NewNamed(t.name)
	if err != nil {
		orig.Close()
		runtime.UnlockOSThread()
		tb.Skipf("cannot create network namespace: %v", err)
	}
	err = netns.Set(orig)
	orig.Close()
	runtime.UnlockOSThread()
	if err != nil {
		panic(err)
	}
	tb.Cleanup(func() {
		t.ns.Close()
		if err := netns.DeleteNamed(t.name); err != nil {
			tb.Errorf("delete netns %s: %v", t.name, err)
		}
	})
	inNS(tb, t.ns, func() {
		// No IPv6: the stack would send router/MLD solicitations.
		for _, p := range []string{"/proc/sys/net/ipv6/conf/default/disable_ipv6", "/proc/sys/net/ipv6/conf/all/disable_ipv6"} {
			_ = os.WriteFile(p, []byte("1"), 0o644)
		}
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: t.a}, PeerName: t.b}
		if err := netlink.LinkAdd(veth); err != nil {
			tb.Fatalf("add veth: %v", err)
		}
		for _, n := range []string{t.a, t.b} {
			l, err := netlink.LinkByName(n)
			if err != nil {
				tb.Fatalf("find %s: %v", n, err)
			}
			// Room for a 1500 byte payload with two tags.
			if err := netlink.LinkSetMTU(l, 1600); err != nil {
				tb.Fatalf("set %s mtu: %v", n, err)
			}
			if err := netlink.LinkSetUp(l); err != nil {
				tb.Fatalf("set %s up: %v", n, err)
			}
			if n == t.a {
				t.aIdx = l.Attrs().Index
			} else {
				t.bIdx = l.Attrs().Index
			}
		}
	})
	return t
}

// open opens an AF_XDP queue on A (skipping the test when the kernel
// cannot do AF_XDP at all).
func (t *topo) open(tb testing.TB, be *Backend, ifname string, cfg backend.QueueConfig) *Queue {
	tb.Helper()
	var q *Queue
	var err error
	inNS(tb, t.ns, func() { q, err = be.OpenQueue(ifname, cfg) })
	if err != nil {
		if errors.Is(err, unix.EAFNOSUPPORT) || errors.Is(err, unix.EPERM) {
			tb.Skipf("AF_XDP unsupported here: %v", err)
		}
		tb.Fatalf("open %s: %v", ifname, err)
	}
	tb.Cleanup(func() { q.Close() })
	return q
}

// xdpAttached reports whether ifname in the topology has an XDP program.
func (t *topo) xdpAttached(tb testing.TB, ifname string) (bool, uint32) {
	tb.Helper()
	var x *netlink.LinkXdp
	inNS(tb, t.ns, func() {
		l, err := netlink.LinkByName(ifname)
		if err != nil {
			tb.Fatalf("find %s: %v", ifname, err)
		}
		x = l.Attrs().Xdp
	})
	if x == nil {
		return false, 0
	}
	return x.Attached, x.ProgId
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// packetSocket opens an AF_PACKET socket on ifname inside the topology
// that sees every ethertype and ignores its own outgoing frames.
func (t *topo) packetSocket(tb testing.TB, ifindex int) int {
	tb.Helper()
	var fd int
	inNS(tb, t.ns, func() {
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			tb.Fatalf("packet socket: %v", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}); err != nil {
			tb.Fatalf("bind packet socket: %v", err)
		}
		_ = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
		tv := unix.NsecToTimeval(int64(200 * time.Millisecond))
		_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	})
	tb.Cleanup(func() { unix.Close(fd) })
	return fd
}

func sendRaw(tb testing.TB, fd, ifindex int, frame []byte) {
	tb.Helper()
	if err := unix.Sendto(fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: ifindex, Halen: 6}); err != nil {
		tb.Fatalf("send raw frame: %v", err)
	}
}

// readRaw collects frames from a packet socket until timeout, keeping
// those keep() accepts.
func readRaw(fd int, timeout time.Duration, keep func([]byte) bool) [][]byte {
	var out [][]byte
	buf := make([]byte, 4096)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			continue
		}
		if keep(buf[:n]) {
			out = append(out, bytes.Clone(buf[:n]))
		}
	}
	return out
}

var (
	macA   = []byte{0x02, 0x00, 0x00, 0x00, 0x00, 0x0a}
	macB   = []byte{0x02, 0x00, 0x00, 0x00, 0x00, 0x0b}
	testET = []byte{0x88, 0xb5} // IEEE local experimental ethertype
)

// frame builds dst|src|tags...|ethertype 0x88b5|seq|padding up to size.
func frame(dst, src []byte, seq uint32, size int, tags ...[4]byte) []byte {
	f := make([]byte, 0, size)
	f = append(f, dst...)
	f = append(f, src...)
	for _, t := range tags {
		f = append(f, t[:]...)
	}
	f = append(f, testET...)
	f = binary.BigEndian.AppendUint32(f, seq)
	for i := 0; len(f) < size; i++ {
		f = append(f, byte(i))
	}
	return f
}

func tag(tpid uint16, vid uint16) [4]byte {
	var t [4]byte
	binary.BigEndian.PutUint16(t[:], tpid)
	binary.BigEndian.PutUint16(t[2:], vid)
	return t
}

// fromB reports frames with B's test source MAC.
func fromB(f []byte) bool { return len(f) >= 14 && bytes.Equal(f[6:12], macB) }

// recvFrames receives until n frames from B arrived or the timeout hits
// (the queue is then closed to unblock Recv).
func recvFrames(tb testing.TB, q *Queue, n int, timeout time.Duration) [][]byte {
	tb.Helper()
	type res struct {
		frames [][]byte
		err    error
	}
	ch := make(chan res, 1)
	go func() {
		var out [][]byte
		b := backend.NewBatch(backend.DefaultBatch)
		for len(out) < n {
			k, err := q.Recv(b)
			if err != nil {
				ch <- res{out, err}
				return
			}
			for i := 0; i < k; i++ {
				if b.Off[i] < backend.Headroom {
					ch <- res{out, fmt.Errorf("frame %d: Off %d < Headroom %d", i, b.Off[i], backend.Headroom)}
					return
				}
				// The headroom is ours to write (tag push in place).
				for j := b.Off[i] - backend.Headroom; j < b.Off[i]; j++ {
					b.Buf[i][j] = 0xee
				}
				if f := b.Frame(i); fromB(f) {
					out = append(out, bytes.Clone(f))
				}
			}
			q.Release(b)
		}
		ch <- res{out, nil}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			tb.Fatalf("recv: %v (got %d of %d frames)", r.err, len(r.frames), n)
		}
		return r.frames
	case <-time.After(timeout):
		q.Close()
		r := <-ch
		tb.Fatalf("timeout: got %d of %d frames", len(r.frames), n)
		return nil
	}
}

type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// testOptions routes the backend's log to the test log (shown with -v).
func testOptions(tb testing.TB) Options {
	return Options{Logger: slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelDebug}))}
}

// unplace removes q's socket from the XSKMAP (every entry of its NIC
// queue), as if the queue had no socket.
func unplace(t *testing.T, q *Queue) {
	t.Helper()
	p := q.prog
	for c := 0; c < p.cpus; c++ {
		if err := p.xsks.Delete(uint32(q.x.queueID*p.cpus + c)); err != nil {
			t.Fatalf("remove the socket from the XSKMAP: %v", err)
		}
	}
}
