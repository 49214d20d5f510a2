package capture

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"github.com/vswitch/vswitch/test/topo"
)

// lab is one namespace with a veth pair: the capture runs on "cap0", frames
// are injected from its peer "peer0".
type lab struct {
	ns   *topo.NS
	peer *topo.PacketConn
}

func newLab(t *testing.T) *lab {
	t.Helper()
	ns := topo.VethNS(t, "cap", "cap0", "peer0") // skips unless root
	peer, err := ns.PacketConn("peer0")
	if err != nil {
		t.Fatal(err)
	}
	return &lab{ns: ns, peer: peer}
}

// open opens a capture on ifname inside the lab's namespace.
func (l *lab) open(t *testing.T, ifname string) *Capture {
	t.Helper()
	var c *Capture
	err := l.ns.Do(func() error {
		var err error
		c, err = Open(ifname)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// run starts c.Run in the background; wait returns its results.
func run(ctx context.Context, c *Capture, opt Options) (wait func() (*bytes.Buffer, Stats, error)) {
	var (
		buf bytes.Buffer
		st  Stats
		err error
		wg  sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		st, err = c.Run(ctx, &buf, opt)
	}()
	return func() (*bytes.Buffer, Stats, error) { wg.Wait(); return &buf, st, err }
}

func waitTimeout(t *testing.T, d time.Duration, wait func() (*bytes.Buffer, Stats, error)) (*bytes.Buffer, Stats, error) {
	t.Helper()
	type res struct {
		b   *bytes.Buffer
		st  Stats
		err error
	}
	ch := make(chan res, 1)
	go func() { b, st, err := wait(); ch <- res{b, st, err} }()
	select {
	case r := <-ch:
		return r.b, r.st, r.err
	case <-time.After(d):
		t.Fatalf("capture did not stop within %v", d)
		return nil, Stats{}, nil
	}
}

type record struct {
	ci   gopacket.CaptureInfo
	data []byte
}

func readPcap(t *testing.T, r io.Reader) []record {
	t.Helper()
	pr, err := pcapgo.NewReader(r)
	if err != nil {
		t.Fatalf("pcap reader: %v", err)
	}
	if pr.LinkType() != layers.LinkTypeEthernet {
		t.Errorf("link type %v, want Ethernet", pr.LinkType())
	}
	if pr.Snaplen() != Snaplen {
		t.Errorf("snaplen %d, want %d", pr.Snaplen(), Snaplen)
	}
	var out []record
	for {
		data, ci, err := pr.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("read record %d: %v", len(out), err)
		}
		out = append(out, record{ci, data})
	}
}

var (
	srcMAC = topo.MustMAC("52:54:00:00:00:01")
	dstMAC = topo.MustMAC("52:54:00:00:00:02")
)

func udp(i int) []byte {
	return topo.BuildUDPv4(dstMAC, srcMAC, net.IPv4(10, 0, 0, 1), net.IPv4(10, 0, 0, 2),
		uint16(4000+i), 5000, []byte(fmt.Sprintf("frame %d", i)))
}

// TestUntaggedAndTaggedFramesAreByteIdentical sends untagged, 802.1Q (VID
// 100 PCP 5) and 802.1ad frames in from the peer, plus one frame out of the
// captured interface itself, and expects exactly those bytes in the pcap.
func TestUntaggedAndTaggedFramesAreByteIdentical(t *testing.T) {
	l := newLab(t)
	c := l.open(t, "cap0")
	self, err := l.ns.PacketConn("cap0")
	if err != nil {
		t.Fatal(err)
	}
	want := [][]byte{
		udp(0),
		topo.PushTag(udp(1), 0x8100, 5<<13|100),
		topo.PushTag(topo.PushTag(udp(2), 0x8100, 100), 0x88a8, 3<<13|200), // QinQ: outer S-tag
		udp(3), // sent by the captured side: outgoing direction
	}
	start := time.Now()
	for _, f := range want[:3] {
		if err := l.peer.WriteFrame(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := self.WriteFrame(want[3]); err != nil {
		t.Fatal(err)
	}
	wait := run(context.Background(), c, Options{Count: len(want), Timeout: 5 * time.Second})
	buf, st, err := waitTimeout(t, 10*time.Second, wait)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st.Frames != len(want) {
		t.Fatalf("Run captured %d frames, want %d", st.Frames, len(want))
	}
	recs := readPcap(t, buf)
	if len(recs) != len(want) {
		t.Fatalf("pcap holds %d records, want %d", len(recs), len(want))
	}
	for i, r := range recs {
		if !bytes.Equal(r.data, want[i]) {
			t.Errorf("record %d:\n got % x\nwant % x", i, r.data, want[i])
		}
		if r.ci.Length != len(want[i]) || r.ci.CaptureLength != len(want[i]) {
			t.Errorf("record %d: length %d caplen %d, want %d", i, r.ci.Length, r.ci.CaptureLength, len(want[i]))
		}
		if r.ci.Timestamp.Before(start.Add(-time.Second)) || r.ci.Timestamp.After(time.Now().Add(time.Second)) {
			t.Errorf("record %d: timestamp %v not near the test's run (%v)", i, r.ci.Timestamp, start)
		}
	}
	if tpid, tci, ok := topo.OuterTag(recs[1].data); !ok || tpid != 0x8100 || tci&0xfff != 100 || tci>>13 != 5 {
		t.Errorf("record 1 tag: tpid %#x tci %#x ok %v, want 0x8100 VID 100 PCP 5", tpid, tci, ok)
	}
}

// TestCountStopsAfterN: Count 3 stops after 3 of 5 frames.
func TestCountStopsAfterN(t *testing.T) {
	l := newLab(t)
	c := l.open(t, "cap0")
	for i := range 5 {
		if err := l.peer.WriteFrame(udp(i)); err != nil {
			t.Fatal(err)
		}
	}
	buf, st, err := waitTimeout(t, 10*time.Second, run(context.Background(), c, Options{Count: 3}))
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	recs := readPcap(t, buf)
	if st.Frames != 3 || len(recs) != 3 {
		t.Fatalf("captured %d frames, pcap holds %d, want 3 and 3", st.Frames, len(recs))
	}
	for i, r := range recs {
		if !bytes.Equal(r.data, udp(i)) {
			t.Errorf("record %d is not frame %d", i, i)
		}
	}
}

// TestTimeoutStops: with no traffic Run returns after Timeout with a valid,
// empty pcap and no error.
func TestTimeoutStops(t *testing.T) {
	l := newLab(t)
	c := l.open(t, "cap0")
	start := time.Now()
	buf, st, err := waitTimeout(t, 5*time.Second, run(context.Background(), c, Options{Timeout: 300 * time.Millisecond}))
	el := time.Since(start)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if el < 300*time.Millisecond || el > 2*time.Second {
		t.Errorf("Run took %v, want about 300ms", el)
	}
	if st.Frames != 0 || len(readPcap(t, buf)) != 0 {
		t.Errorf("captured %d frames on a silent link", st.Frames)
	}
}

// TestCancelFlushesWhatWasCaptured: frames arriving during the run are in the
// pcap after the context is cancelled (vswctl's SIGINT path).
func TestCancelFlushesWhatWasCaptured(t *testing.T) {
	l := newLab(t)
	c := l.open(t, "cap0")
	ctx, cancel := context.WithCancel(context.Background())
	wait := run(ctx, c, Options{})
	for i := range 4 {
		if err := l.peer.WriteFrame(udp(i)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	cancel()
	buf, st, err := waitTimeout(t, 5*time.Second, wait)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if recs := readPcap(t, buf); st.Frames != 4 || len(recs) != 4 {
		t.Fatalf("captured %d frames, pcap holds %d, want 4", st.Frames, len(recs))
	}
}

// TestInterfaceDisappears: deleting the interface ends Run with
// ErrInterfaceGone, keeping what was captured; also when it was down first.
func TestInterfaceDisappears(t *testing.T) {
	for _, downFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("down-first=%v", downFirst), func(t *testing.T) {
			l := newLab(t)
			c := l.open(t, "cap0")
			if err := l.peer.WriteFrame(udp(0)); err != nil {
				t.Fatal(err)
			}
			wait := run(context.Background(), c, Options{Timeout: 8 * time.Second})
			time.Sleep(100 * time.Millisecond)
			if downFirst {
				if err := l.ns.SetDown("cap0"); err != nil {
					t.Fatal(err)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err := l.ns.DelLink("cap0"); err != nil {
				t.Fatal(err)
			}
			buf, st, err := waitTimeout(t, 5*time.Second, wait)
			if !errors.Is(err, ErrInterfaceGone) {
				t.Fatalf("Run error %v, want ErrInterfaceGone", err)
			}
			if recs := readPcap(t, buf); st.Frames != 1 || len(recs) != 1 {
				t.Errorf("captured %d, pcap holds %d, want the 1 frame sent before", st.Frames, len(recs))
			}
		})
	}
}

// TestDownAndUpKeepsCapturing: a tap going down and up (VM reboot) does not
// end the capture.
func TestDownAndUpKeepsCapturing(t *testing.T) {
	l := newLab(t)
	c := l.open(t, "cap0")
	wait := run(context.Background(), c, Options{Count: 2, Timeout: 8 * time.Second})
	if err := l.peer.WriteFrame(udp(0)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if err := l.ns.SetDown("cap0"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(700 * time.Millisecond) // down for a while
	if err := l.ns.SetUp("cap0"); err != nil {
		t.Fatal(err)
	}
	// veth carrier needs both ends up; peer0 stayed up.
	time.Sleep(100 * time.Millisecond)
	if err := l.peer.WriteFrame(udp(1)); err != nil {
		t.Fatal(err)
	}
	buf, st, err := waitTimeout(t, 10*time.Second, wait)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	recs := readPcap(t, buf)
	if st.Frames != 2 || len(recs) != 2 || !bytes.Equal(recs[1].data, udp(1)) {
		t.Fatalf("captured %d frames (%d records), want both frames around the down/up", st.Frames, len(recs))
	}
}

func TestOpenMissingInterface(t *testing.T) {
	l := newLab(t)
	err := l.ns.Do(func() error {
		c, err := Open("vnet9")
		if err == nil {
			c.Close()
		}
		return err
	})
	if !errors.Is(err, ErrNoInterface) {
		t.Fatalf("Open(vnet9) = %v, want ErrNoInterface", err)
	}
}

// TestWriteErrorStopsRun: a failing writer is reported, not ignored.
func TestWriteErrorStopsRun(t *testing.T) {
	l := newLab(t)
	c := l.open(t, "cap0")
	_, err := c.Run(context.Background(), failWriter{}, Options{Count: 1})
	if err == nil || !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Run into a failing writer = %v, want the write error", err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, os.ErrClosed }

// TestParseCmsgsAndRebuild checks the control-message walk and in-place tag
// rebuild on hand-made input, without a socket.
func TestParseCmsgsAndRebuild(t *testing.T) {
	c := &Capture{buf: make([]byte, tagLen+Snaplen), oob: make([]byte, 256), ifindex: 7}
	frame := udp(9)
	copy(c.buf[tagLen:], frame)
	oobn := fakeCmsgs(c.oob, 0x88a8, 2<<13|300, time.Unix(1700000000, 123456789))
	var out bytes.Buffer
	pw := pcapgo.NewWriterNanos(&out)
	if err := pw.WriteFileHeader(Snaplen, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	if err := c.writeFrame(pw, len(frame), oobn); err != nil {
		t.Fatal(err)
	}
	recs := readPcap(t, &out)
	want := topo.PushTag(frame, 0x88a8, 2<<13|300)
	if len(recs) != 1 || !bytes.Equal(recs[0].data, want) {
		t.Fatalf("got %v records; want the frame with its S-tag rebuilt", len(recs))
	}
	if !recs[0].ci.Timestamp.Equal(time.Unix(1700000000, 123456789)) {
		t.Errorf("timestamp %v, want the kernel's", recs[0].ci.Timestamp)
	}
}

func BenchmarkHandleFrame(b *testing.B) {
	c := &Capture{buf: make([]byte, tagLen+Snaplen), oob: make([]byte, 256), ifindex: 7}
	frame := udp(1)
	oobn := fakeCmsgs(c.oob, 0x8100, 100, time.Now())
	pw := pcapgo.NewWriterNanos(io.Discard)
	b.ReportAllocs()
	b.SetBytes(int64(len(frame) + tagLen))
	for b.Loop() {
		copy(c.buf[tagLen:], frame)
		if err := c.writeFrame(pw, len(frame), oobn); err != nil {
			b.Fatal(err)
		}
	}
}

// fakeCmsgs writes a PACKET_AUXDATA (VLAN valid, with TPID) and an
// SCM_TIMESTAMPNS control message into oob, as the kernel would, and
// returns their length.
func fakeCmsgs(oob []byte, tpid, tci uint16, ts time.Time) int {
	clear(oob)
	off := 0
	put := func(level, typ int32, data []byte) {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[off]))
		h.Level, h.Type = level, typ
		h.SetLen(unix.CmsgLen(len(data)))
		copy(oob[off+unix.CmsgLen(0):], data)
		off += unix.CmsgSpace(len(data))
	}
	aux := make([]byte, auxSize)
	binary.NativeEndian.PutUint32(aux[auxStatusOff:], unix.TP_STATUS_VLAN_VALID|unix.TP_STATUS_VLAN_TPID_VALID)
	binary.NativeEndian.PutUint16(aux[auxTCIOff:], tci)
	binary.NativeEndian.PutUint16(aux[auxTPIDOff:], tpid)
	put(unix.SOL_PACKET, unix.PACKET_AUXDATA, aux)
	tsb := make([]byte, unsafe.Sizeof(unix.Timespec{}))
	*(*unix.Timespec)(unsafe.Pointer(&tsb[0])) = unix.NsecToTimespec(ts.UnixNano())
	put(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, tsb)
	return off
}

// BenchmarkCaptureVeth measures end to end: b.N frames sent from the peer in
// batches small enough for the socket buffer, captured into io.Discard.
// (Allocations include the sender's; BenchmarkHandleFrame isolates the
// capture's per-frame path.)
func BenchmarkCaptureVeth(b *testing.B) {
	tp, err := topo.NewTopo()
	if err != nil {
		b.Skip(err)
	}
	defer tp.Cleanup()
	ns, err := tp.NewNS("capb")
	if err != nil {
		b.Fatal(err)
	}
	if err := topo.VethPair(ns, "cap0", ns, "peer0"); err != nil {
		b.Fatal(err)
	}
	peer, err := ns.PacketConn("peer0")
	if err != nil {
		b.Fatal(err)
	}
	var c *Capture
	if err := ns.Do(func() error { c, err = Open("cap0"); return err }); err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	frame := topo.PushTag(udp(1), 0x8100, 100)
	b.SetBytes(int64(len(frame)))
	b.ResetTimer()
	var total int
	for sent := 0; sent < b.N; {
		n := min(b.N-sent, 2000)
		for range n {
			if err := peer.WriteFrame(frame); err != nil {
				b.Fatal(err)
			}
		}
		st, err := c.Run(context.Background(), io.Discard, Options{Count: n, Timeout: 10 * time.Second})
		if err != nil {
			b.Fatal(err)
		}
		total += st.Frames
		sent += n
	}
	if total != b.N {
		b.Fatalf("captured %d of %d frames", total, b.N)
	}
}
