package capture

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"github.com/vswitch/vswitch/internal/pcapfile"
	"github.com/vswitch/vswitch/test/topo"
)

// lab is one namespace with a veth pair: the capture runs on "cap0", frames
// are injected from its peer "peer0".
type lab struct {
	ns   *topo.NS
	peer *topo.PacketConn
	lim  Limit // session slots of the test's own, not the host's
}

func newLab(t *testing.T) *lab {
	t.Helper()
	ns := topo.VethNS(t, "cap", "cap0", "peer0") // skips unless root
	peer, err := ns.PacketConn("peer0")
	if err != nil {
		t.Fatal(err)
	}
	return &lab{ns: ns, peer: peer, lim: Limit{Dir: t.TempDir()}}
}

// open opens a capture on ifname inside the lab's namespace.
func (l *lab) open(t *testing.T, ifname string) *Capture {
	t.Helper()
	c, err := l.tryOpen(ifname)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (l *lab) tryOpen(ifname string) (*Capture, error) {
	var c *Capture
	err := l.ns.Do(func() error {
		var err error
		c, err = l.lim.Open(ifname)
		return err
	})
	return c, err
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
	dir  pcapfile.Direction
	data []byte
}

// readPcap reads a capture file (pcapng or pcap) with pcapfile's reader,
// and a pcap also with pcapgo's, and returns its records.
func readPcap(t *testing.T, r io.Reader) []record {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	f, err := pcapfile.ReadAll(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("capture file: %v", err)
	}
	if f.Interfaces[0].Snaplen != Snaplen {
		t.Errorf("snaplen %d, want %d", f.Interfaces[0].Snaplen, Snaplen)
	}
	var out []record
	for _, p := range f.Packets {
		ci := gopacket.CaptureInfo{Timestamp: p.Time, CaptureLength: len(p.Data), Length: p.Length}
		out = append(out, record{ci, p.Dir, p.Data})
	}
	if f.Format == pcapfile.Pcap {
		pr, err := pcapgo.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("pcapgo: %v", err)
		}
		if pr.LinkType() != layers.LinkTypeEthernet {
			t.Errorf("link type %v, want Ethernet", pr.LinkType())
		}
		for i := range out {
			data, _, err := pr.ReadPacketData()
			if err != nil || !bytes.Equal(data, out[i].data) {
				t.Fatalf("pcapgo record %d: %v", i, err)
			}
		}
	}
	return out
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
	for i, r := range recs {
		want := pcapfile.Inbound
		if i == 3 {
			want = pcapfile.Outbound
		}
		if r.dir != want {
			t.Errorf("record %d: direction %v, want %v", i, r.dir, want)
		}
	}
}

// TestDirectionAndFormat: --direction keeps the frames of one direction
// (the pkttype of the packet socket says which); the pcap format is read
// by pcapgo.
func TestDirectionAndFormat(t *testing.T) {
	for _, tc := range []struct {
		dir  string
		want []byte
	}{{"in", udp(0)}, {"out", udp(1)}} {
		t.Run(tc.dir, func(t *testing.T) {
			l := newLab(t)
			c := l.open(t, "cap0")
			self, err := l.ns.PacketConn("cap0")
			if err != nil {
				t.Fatal(err)
			}
			wait := run(context.Background(), c, Options{Count: 1, Timeout: 5 * time.Second, Direction: tc.dir, Format: pcapfile.Pcap})
			time.Sleep(100 * time.Millisecond) // Run is reading
			if err := l.peer.WriteFrame(udp(0)); err != nil {
				t.Fatal(err)
			}
			if err := self.WriteFrame(udp(1)); err != nil {
				t.Fatal(err)
			}
			buf, st, err := waitTimeout(t, 10*time.Second, wait)
			if err != nil {
				t.Fatal(err)
			}
			recs := readPcap(t, buf)
			if st.Frames != 1 || len(recs) != 1 || !bytes.Equal(recs[0].data, tc.want) || recs[0].dir != pcapfile.Unknown {
				t.Fatalf("direction %s: %d frames %v, want only % x (without a direction: pcap has none)", tc.dir, st.Frames, recs, tc.want)
			}
		})
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
	c, err := l.tryOpen("vnet9")
	if err == nil {
		c.Close()
	}
	if !errors.Is(err, ErrNoInterface) {
		t.Fatalf("Open(vnet9) = %v, want ErrNoInterface", err)
	}
	// The failed open gave its session slot back.
	if _, err := os.Stat(filepath.Join(l.lim.Dir, "slot-0.lock")); err != nil {
		t.Fatalf("no slot was taken: %v", err)
	}
	l.lim.Max = 1
	l.open(t, "cap0")
}

// At most Limit.Max captures at once: one more is refused with
// ErrTooManySessions, naming who holds the slots; a closed capture frees
// its slot for the next; a refused or failed open holds nothing.
func TestSessionLimit(t *testing.T) {
	l := newLab(t)
	l.lim.Max = 3
	var cs []*Capture
	for range 3 {
		cs = append(cs, l.open(t, "cap0"))
	}
	for range 2 { // refused twice: the refusal takes no slot
		_, err := l.tryOpen("cap0")
		if !errors.Is(err, ErrTooManySessions) {
			t.Fatalf("fourth capture: %v, want ErrTooManySessions", err)
		}
		if want := fmt.Sprintf("pid %d on cap0", os.Getpid()); !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "all 3 slots") {
			t.Fatalf("refusal %q does not say all 3 slots are held by %q", err, want)
		}
	}
	if err := cs[1].Close(); err != nil {
		t.Fatal(err)
	}
	c := l.open(t, "cap0")
	// It works like any other: a frame sent is captured.
	wait := run(context.Background(), c, Options{Count: 1, Timeout: 5 * time.Second})
	time.Sleep(50 * time.Millisecond)
	if err := l.peer.WriteFrame(udp(1)); err != nil {
		t.Fatal(err)
	}
	if _, st, err := waitTimeout(t, 10*time.Second, wait); err != nil || st.Frames != 1 {
		t.Fatalf("capture in the freed slot: %d frames, %v", st.Frames, err)
	}
	if _, err := l.tryOpen("cap0"); !errors.Is(err, ErrTooManySessions) {
		t.Fatalf("with all slots held again: %v, want ErrTooManySessions", err)
	}
}

// sessionChildEnv makes the test binary a capture process (sessionChild)
// instead of running tests: it holds the slot directory.
const sessionChildEnv = "VSWITCH_CAPTURE_CHILD_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(sessionChildEnv); dir != "" {
		sessionChild(dir)
	}
	os.Exit(m.Run())
}

// sessionChild is the capture process TestKilledSessionReleases kills: it
// opens a capture on cap0 in its own namespace, within a limit of 2 slots
// in dir, says "ready" and captures until killed.
func sessionChild(dir string) {
	c, err := Limit{Dir: dir, Max: 2}.Open("cap0")
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	_, err = c.Run(context.Background(), io.Discard, Options{})
	fmt.Println("error", err)
	os.Exit(1)
}

// An abandoned capture, its process killed with SIGKILL, keeps nothing:
// the kernel closes its packet socket (gone from the namespace's
// /proc/net/packet) and drops its flock, so its slot is free for the next
// capture at once, without anyone cleaning up.
func TestKilledSessionReleases(t *testing.T) {
	l := newLab(t)
	l.lim.Max = 2
	l.open(t, "cap0") // slot 0
	cmd := exec.Command("ip", "netns", "exec", l.ns.Name, os.Args[0])
	cmd.Env = append(os.Environ(), sessionChildEnv+"="+l.lim.Dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Scan()
		line <- sc.Text()
		for sc.Scan() { // drain
		}
	}()
	select {
	case s := <-line:
		if s != "ready" {
			t.Fatalf("capture process: %q", s)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("capture process not ready after 20 s")
	}
	pid := cmd.Process.Pid

	// Its packet socket, by inode.
	inode := ""
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, fd := range fds {
		link, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if ino, ok := strings.CutPrefix(link, "socket:["); ok {
			ino = strings.TrimSuffix(ino, "]")
			if slices.Contains(l.packetSockets(t), ino) {
				inode = ino
			}
		}
	}
	if inode == "" {
		t.Fatalf("no packet socket of pid %d in %s (%v)", pid, l.ns.Name, l.packetSockets(t))
	}
	_, err = l.tryOpen("cap0")
	if !errors.Is(err, ErrTooManySessions) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d on cap0", pid)) {
		t.Fatalf("third capture: %v, want ErrTooManySessions naming pid %d", err, pid)
	}

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if slices.Contains(l.packetSockets(t), inode) {
		t.Fatalf("packet socket %s of the killed capture is still open", inode)
	}
	l.open(t, "cap0") // its slot
	if _, err := l.tryOpen("cap0"); !errors.Is(err, ErrTooManySessions) {
		t.Fatalf("after taking the freed slot: %v, want ErrTooManySessions", err)
	}
}

// packetSockets lists the inodes of the packet sockets in the lab's
// namespace.
func (l *lab) packetSockets(t *testing.T) []string {
	t.Helper()
	inodes, err := l.ns.PacketSockets()
	if err != nil {
		t.Fatal(err)
	}
	return inodes
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
	pw, err := pcapfile.NewWriter(&out, pcapfile.Pcapng, pcapfile.Interface{})
	if err != nil {
		t.Fatal(err)
	}
	c.pw = pw
	if err := c.writeFrame(pcapfile.Outbound, len(frame), oobn); err != nil {
		t.Fatal(err)
	}
	if err := pw.Flush(); err != nil {
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
	pw, err := pcapfile.NewWriter(io.Discard, pcapfile.Pcapng, pcapfile.Interface{})
	if err != nil {
		b.Fatal(err)
	}
	c.pw = pw
	b.ReportAllocs()
	b.SetBytes(int64(len(frame) + tagLen))
	for b.Loop() {
		copy(c.buf[tagLen:], frame)
		if err := c.writeFrame(pcapfile.Inbound, len(frame), oobn); err != nil {
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
