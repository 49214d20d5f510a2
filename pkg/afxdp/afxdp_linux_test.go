//go:build linux

package afxdp

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"github.com/vswitch/vswitch/pkg/backend"
	"golang.org/x/sys/unix"
)

func TestChunkSize(t *testing.T) {
	for _, c := range []struct {
		frame int
		want  uint64
		err   bool
	}{
		{0, 2048, false},
		{1526, 2048, false},
		{2048 - 256, 2048, false},
		{2048 - 255, 4096, false},
		{2040, 4096, false},
		{4096 - 256, 4096, false},
		{9000, 0, true},
	} {
		got, err := chunkSize(c.frame)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("chunkSize(%d) = %d, %v; want %d, err %v", c.frame, got, err, c.want, c.err)
		}
	}
}

func TestRecvByteIdentical(t *testing.T) {
	tp := newTopo(t)
	be := New(testOptions(t))
	q := tp.open(t, be, tp.a, backend.QueueConfig{Role: backend.RolePort})
	in := q.Info()
	t.Logf("queue on veth: xdp mode %q, zero-copy %v, frame %d", in.XDPMode, in.ZeroCopy, in.FrameSize)
	if in.XDPMode == "" {
		t.Fatalf("receiving queue reports no XDP mode")
	}
	if attached, _ := tp.xdpAttached(t, tp.a); !attached {
		t.Fatalf("no XDP program attached to %s after Open", tp.a)
	}

	fd := tp.packetSocket(t, tp.bIdx)
	want := [][]byte{
		frame(macA, macB, 1, 60),
		frame(macA, macB, 2, 1514),
		frame(macA, macB, 3, 64, tag(0x8100, 100)),
		frame(macA, macB, 4, 68, tag(0x88a8, 200), tag(0x8100, 100)),
		frame([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, macB, 5, 64, tag(0x8100, 4094)),
		frame(macA, macB, 6, 1522, tag(0x88a8, 7), tag(0x8100, 4000)),
	}
	for _, f := range want {
		sendRaw(t, fd, tp.bIdx, f)
	}
	got := recvFrames(t, q, len(want), 5*time.Second)
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("frame %d differs:\n got %x\nwant %x", i, got[i], want[i])
		}
	}
	st := q.Stats()
	if st.RxPackets < uint64(len(want)) {
		t.Errorf("RxPackets = %d, want >= %d", st.RxPackets, len(want))
	}
}

// TestControlFramesRedirected: the frames the datapath hands to the
// control plane, LLDP and ECP by ethertype (also behind in-band tags), are
// redirected into the socket byte-identical; the other IEEE 802.1
// link-local frames (STP, LACP, 802.1X, ...) reach the stack untouched and
// not the socket, as they would without us.
func TestControlFramesRedirected(t *testing.T) {
	for _, plain := range []bool{true, false} {
		name := "plain"
		if !plain {
			name = "vlan-restoring"
		}
		t.Run(name, func(t *testing.T) {
			if !plain {
				requireVLANKfunc(t)
			}
			opts := testOptions(t)
			opts.noVLANHint = plain
			testControlFramesRedirected(t, opts, !plain)
		})
	}
}

func testControlFramesRedirected(t *testing.T, opts Options, vlanRestore bool) {
	tp := newTopo(t)
	q := tp.open(t, New(opts), tp.a, backend.QueueConfig{Role: backend.RolePort})
	if q.Info().VLANRestore != vlanRestore {
		t.Fatalf("VLANRestore = %v, want %v", q.Info().VLANRestore, vlanRestore)
	}
	sniffA := tp.packetSocket(t, tp.aIdx)
	fd := tp.packetSocket(t, tp.bIdx)

	ll := func(last byte) []byte { return []byte{0x01, 0x80, 0xc2, 0x00, 0x00, last} }
	withType := func(f []byte, off int, et uint16) []byte {
		binary.BigEndian.PutUint16(f[off:], et)
		return f
	}
	lldp := withType(frame(ll(0x00), macB, 1, 60), 12, 0x88cc)
	ecp := withType(frame(ll(0x00), macB, 2, 60), 12, 0x8940)
	lldpUnicast := withType(frame(macA, macB, 3, 60), 12, 0x88cc) // LLDP by ethertype alone
	taggedLLDP := withType(frame(ll(0x0e), macB, 4, 64, tag(0x8100, 5<<13|100)), 16, 0x88cc)
	taggedECP := withType(frame(ll(0x00), macB, 5, 68, tag(0x88a8, 7), tag(0x8100, 100)), 20, 0x8940)
	qinqLLDP := withType(frame(ll(0x03), macB, 6, 68, tag(0x9100, 7), tag(0x8100, 100)), 20, 0x88cc)
	data := frame(macA, macB, 99, 60)
	// Not link-local: 01:80:c2:00:00:10 is outside the reserved block.
	notReserved := frame(ll(0x10), macB, 100, 60)
	toXSK := [][]byte{lldp, ecp, lldpUnicast, taggedLLDP, taggedECP, qinqLLDP, data, notReserved}

	// An STP configuration BPDU: 802.3 length field, LLC 42 42 03.
	stp := frame(ll(0x00), macB, 0, 60)
	binary.BigEndian.PutUint16(stp[12:], 38)
	copy(stp[14:], []byte{0x42, 0x42, 0x03, 0x00, 0x00, 0x00})
	lacp := withType(frame(ll(0x02), macB, 11, 60), 12, 0x8809)
	eapol := withType(frame(ll(0x03), macB, 12, 60), 12, 0x888e)
	byAddress := frame(ll(0x0e), macB, 13, 60)                                           // link-local, not LLDP/ECP
	taggedEAPOL := withType(frame(ll(0x03), macB, 14, 64, tag(0x8100, 100)), 16, 0x888e) // behind a tag
	threeTags := withType(frame(ll(0x0e), macB, 15, 72, tag(0x88a8, 1), tag(0x8100, 2), tag(0x8100, 3)), 24, 0x88cc)
	toStack := [][]byte{stp, lacp, eapol, byAddress, taggedEAPOL, threeTags}
	// Truncated behind a TPID: passed (the stack drops it), not redirected.
	runtTag := frame(ll(0x0e), macB, 16, 0)[:16]
	binary.BigEndian.PutUint16(runtTag[12:], 0x8100)

	sendRaw(t, fd, tp.bIdx, runtTag)
	for i, f := range toXSK {
		if i < len(toStack) {
			sendRaw(t, fd, tp.bIdx, toStack[i])
		}
		sendRaw(t, fd, tp.bIdx, f)
	}
	got := recvFrames(t, q, len(toXSK), 5*time.Second)
	for i := range toXSK {
		if !bytes.Equal(got[i], toXSK[i]) {
			t.Errorf("XSK frame %d: got %x\nwant %x", i, got[i], toXSK[i])
		}
	}
	seen := readRaw(sniffA, 500*time.Millisecond, fromB)
	for _, w := range toStack {
		n := 0
		for _, s := range seen {
			// The stack's receive path moves an outer tag into metadata.
			if bytes.Equal(s, stripTags(w)) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("link-local frame %x reached the stack on %s %d times, want once", w, tp.a, n)
		}
	}
	if len(seen) != len(toStack) {
		t.Errorf("stack got %d frames, want the %d link-local ones: %x", len(seen), len(toStack), seen)
	}

	// No socket on the queue: the stack gets the control frames too.
	unplace(t, q)
	sendRaw(t, fd, tp.bIdx, lldp)
	seen = readRaw(sniffA, 500*time.Millisecond, fromB)
	if len(seen) != 1 || !bytes.Equal(seen[0], lldp) {
		t.Errorf("without a socket the stack got %x, want the LLDP frame", seen)
	}
}

func TestSendArrivesAtPeer(t *testing.T) {
	tp := newTopo(t)
	be := New(testOptions(t))
	q := tp.open(t, be, tp.a, backend.QueueConfig{Role: backend.RolePort})
	sniffB := tp.packetSocket(t, tp.bIdx)

	var frames [][]byte
	for i := 0; i < backend.DefaultBatch; i++ {
		size := 60 + i*23
		switch i % 3 {
		case 0:
			frames = append(frames, frame(macB, macA, uint32(i), size))
		case 1:
			frames = append(frames, frame(macB, macA, uint32(i), size, tag(0x8100, uint16(i))))
		default:
			frames = append(frames, frame(macB, macA, uint32(i), size, tag(0x88a8, 5), tag(0x8100, uint16(i))))
		}
	}
	n, err := q.Send(frames)
	if err != nil || n != len(frames) {
		t.Fatalf("Send = %d, %v; want %d", n, err, len(frames))
	}
	// Packet sockets see 802.1Q tags moved to metadata on receive, so
	// compare against what B's stack delivers: read with auxdata off, tags
	// stripped. Use the sequence number and payload to check integrity.
	fromA := func(f []byte) bool { return len(f) >= 14 && bytes.Equal(f[6:12], macA) }
	got := readRaw(sniffB, 1*time.Second, fromA)
	if len(got) != len(frames) {
		t.Fatalf("peer got %d frames, want %d", len(got), len(frames))
	}
	for i, g := range got {
		w := stripTags(frames[i])
		if !bytes.Equal(g, w) {
			t.Errorf("frame %d differs at peer:\n got %x\nwant %x", i, g, w)
		}
	}
	if st := q.Stats(); st.TxPackets != uint64(len(frames)) || st.TxErrors != 0 {
		t.Errorf("stats %+v, want %d tx packets and no errors", st, len(frames))
	}

	// Sustained sending recycles TX chunks through the completion ring.
	total := 0
	for i := 0; i < 200; i++ {
		n, err := q.Send(frames)
		if err != nil {
			t.Fatalf("Send round %d: %v", i, err)
		}
		total += n
	}
	if total < 200*len(frames)*9/10 {
		t.Errorf("sustained send accepted %d of %d frames: TX chunks are not recycled", total, 200*len(frames))
	}
}

// stripTags removes the outer VLAN tag like a receiving stack's
// vlan offload does (a packet socket shows the frame without its outermost
// tag; inner tags stay in the bytes).
func stripTags(f []byte) []byte {
	if len(f) >= 18 && (bytes.Equal(f[12:14], []byte{0x81, 0x00}) || bytes.Equal(f[12:14], []byte{0x88, 0xa8})) {
		return append(append([]byte{}, f[:12]...), f[16:]...)
	}
	return f
}

func TestCloseUnblocksRecv(t *testing.T) {
	tp := newTopo(t)
	be := New(testOptions(t))
	q := tp.open(t, be, tp.a, backend.QueueConfig{Role: backend.RolePort})
	errc := make(chan error, 1)
	go func() {
		_, err := q.Recv(backend.NewBatch(8))
		errc <- err
	}()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	if err := q.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, backend.ErrClosed) {
			t.Fatalf("Recv after Close = %v, want ErrClosed", err)
		}
		t.Logf("blocked Recv returned %v after Close", time.Since(start))
	case <-time.After(2 * time.Second):
		t.Fatalf("Recv still blocked 2s after Close")
	}
	if _, err := q.Send([][]byte{frame(macB, macA, 1, 60)}); !errors.Is(err, backend.ErrClosed) {
		t.Errorf("Send after Close = %v, want ErrClosed", err)
	}
	if _, err := q.Recv(backend.NewBatch(8)); !errors.Is(err, backend.ErrClosed) {
		t.Errorf("Recv after Close = %v, want ErrClosed", err)
	}
	if err := q.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestCloseDuringTraffic(t *testing.T) {
	tp := newTopo(t)
	be := New(testOptions(t))
	q := tp.open(t, be, tp.a, backend.QueueConfig{Role: backend.RolePort})
	fd := tp.packetSocket(t, tp.bIdx)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { // peer traffic
		defer wg.Done()
		f := frame(macA, macB, 1, 60)
		for {
			select {
			case <-stop:
				return
			default:
				_ = unix.Sendto(fd, f, 0, &unix.SockaddrLinklayer{Ifindex: tp.bIdx, Halen: 6})
			}
		}
	}()
	recvErr := make(chan error, 1)
	go func() {
		defer wg.Done()
		b := backend.NewBatch(32)
		for {
			_, err := q.Recv(b)
			if err != nil {
				recvErr <- err
				return
			}
			q.Release(b)
		}
	}()
	go func() {
		defer wg.Done()
		frames := [][]byte{frame(macB, macA, 1, 60), frame(macB, macA, 2, 60)}
		for {
			if _, err := q.Send(frames); err != nil {
				return
			}
		}
	}()
	time.Sleep(200 * time.Millisecond)
	q.Close()
	if err := <-recvErr; !errors.Is(err, backend.ErrClosed) {
		t.Errorf("Recv = %v, want ErrClosed", err)
	}
	close(stop)
	wg.Wait()
	if st := q.Stats(); st.RxPackets == 0 || st.TxPackets == 0 {
		t.Errorf("no traffic flowed before Close: %+v", st)
	}
}

func countFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestOpenCloseCyclesNoLeak(t *testing.T) {
	tp := newTopo(t)
	be := New(testOptions(t))
	cfg := backend.QueueConfig{Role: backend.RolePort}
	// Warm up: the ebpf library caches feature probes.
	var q *Queue
	inNS(t, tp.ns, func() {
		var err error
		if q, err = be.OpenQueue(tp.a, cfg); err != nil {
			t.Skipf("AF_XDP unavailable: %v", err)
		}
	})
	q.Close()
	before := countFDs(t)
	for i := 0; i < 100; i++ {
		inNS(t, tp.ns, func() {
			var err error
			if q, err = be.OpenQueue(tp.a, cfg); err != nil {
				t.Fatalf("cycle %d: open: %v", i, err)
			}
		})
		if i == 0 {
			if attached, _ := tp.xdpAttached(t, tp.a); !attached {
				t.Fatalf("no XDP program while the queue is open")
			}
		}
		if err := q.Close(); err != nil {
			t.Fatalf("cycle %d: close: %v", i, err)
		}
	}
	after := countFDs(t)
	if after != before {
		t.Errorf("fd count %d before 100 cycles, %d after", before, after)
	}
	if attached, id := tp.xdpAttached(t, tp.a); attached {
		t.Errorf("XDP program %d still attached after the last Close", id)
	}
	if len(be.progs) != 0 || len(be.socks) != 0 {
		t.Errorf("backend registry not empty: %d programs, %d sockets", len(be.progs), len(be.socks))
	}
}

// attachForeign attaches an XDP_DROP program the old (netlink) way and
// closes our fd, as a crashed netlink-based loader would leave it.
func attachForeign(t *testing.T, tp *topo, flags int) uint32 {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.XDP,
		License:      "MIT",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 1), asm.Return()}, // XDP_DROP
	})
	if err != nil {
		t.Skipf("cannot load XDP program: %v", err)
	}
	defer prog.Close()
	inNS(t, tp.ns, func() {
		l, err := netlink.LinkByName(tp.a)
		if err != nil {
			t.Fatal(err)
		}
		if err := netlink.LinkSetXdpFdWithFlags(l, prog.FD(), flags); err != nil {
			t.Fatalf("attach foreign program: %v", err)
		}
	})
	attached, id := tp.xdpAttached(t, tp.a)
	if !attached {
		t.Fatalf("foreign program not attached")
	}
	return id
}

func TestStaleNetlinkProgramReplaced(t *testing.T) {
	for _, c := range []struct {
		name  string
		flags int
	}{
		{"native", unix.XDP_FLAGS_DRV_MODE},
		{"generic", unix.XDP_FLAGS_SKB_MODE},
	} {
		t.Run(c.name, func(t *testing.T) {
			tp := newTopo(t)
			stale := attachForeign(t, tp, c.flags)
			be := New(testOptions(t))
			q := tp.open(t, be, tp.a, backend.QueueConfig{Role: backend.RolePort})
			if _, id := tp.xdpAttached(t, tp.a); id == stale {
				t.Fatalf("stale program %d still attached", stale)
			}
			fd := tp.packetSocket(t, tp.bIdx)
			f := frame(macA, macB, 7, 60)
			sendRaw(t, fd, tp.bIdx, f)
			got := recvFrames(t, q, 1, 5*time.Second)
			if !bytes.Equal(got[0], f) {
				t.Fatalf("got %x want %x", got[0], f)
			}
			q.Close()
			if attached, id := tp.xdpAttached(t, tp.a); attached {
				t.Errorf("program %d attached after Close", id)
			}
		})
	}
}

// TestCrashLeavesNoProgram opens a queue in a child process, kills it with
// SIGKILL and checks the kernel dropped the program (bpf_link semantics)
// and that a new Open works.
func TestCrashLeavesNoProgram(t *testing.T) {
	tp := newTopo(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.v")
	cmd.Env = append(os.Environ(), "AFXDP_CRASH_NETNS="+tp.name, "AFXDP_CRASH_IF="+tp.a)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	ready := false
	for sc.Scan() {
		if strings.Contains(sc.Text(), "CHILD-READY") {
			ready = true
			break
		}
		if strings.Contains(sc.Text(), "SKIP") {
			break
		}
	}
	if !ready {
		cmd.Process.Kill()
		cmd.Wait()
		t.Skip("child could not open an AF_XDP queue")
	}
	if attached, _ := tp.xdpAttached(t, tp.a); !attached {
		t.Fatalf("child's XDP program not attached")
	}
	cmd.Process.Kill() // the crash: no Close, no detach
	cmd.Wait()
	deadline := time.Now().Add(2 * time.Second)
	for {
		attached, id := tp.xdpAttached(t, tp.a)
		if !attached {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("program %d still attached after the owner died", id)
		}
		time.Sleep(10 * time.Millisecond)
	}
	be := New(testOptions(t))
	q := tp.open(t, be, tp.a, backend.QueueConfig{Role: backend.RolePort})
	fd := tp.packetSocket(t, tp.bIdx)
	f := frame(macA, macB, 8, 60)
	sendRaw(t, fd, tp.bIdx, f)
	if got := recvFrames(t, q, 1, 5*time.Second); !bytes.Equal(got[0], f) {
		t.Fatalf("got %x want %x", got[0], f)
	}
}

func TestCrashHelper(t *testing.T) {
	name := os.Getenv("AFXDP_CRASH_NETNS")
	if name == "" {
		t.Skip("helper process for TestCrashLeavesNoProgram")
	}
	ns, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	var q *Queue
	inNS(t, ns, func() {
		q, err = New(testOptions(t)).OpenQueue(os.Getenv("AFXDP_CRASH_IF"), backend.QueueConfig{Role: backend.RolePort})
	})
	if err != nil {
		t.Skipf("open: %v", err)
	}
	os.Stdout.WriteString("CHILD-READY\n")
	time.Sleep(time.Minute)
	q.Close()
}

// TestUplinkSharedSocket: an RX queue and several TX-only queues name the
// same uplink queue; they share one socket, a second receiver is refused,
// and the transmit queues keep working when the receiver closes.
func TestUplinkSharedSocket(t *testing.T) {
	tp := newTopo(t)
	be := New(testOptions(t))
	rx := tp.open(t, be, tp.a, backend.QueueConfig{Role: backend.RoleUplinkRX, QueueID: 0})
	tx1 := tp.open(t, be, tp.a, backend.QueueConfig{Role: backend.RoleUplinkTX, QueueID: 0})
	tx2 := tp.open(t, be, tp.a, backend.QueueConfig{Role: backend.RoleUplinkTX, QueueID: 0})
	if rx.x != tx1.x || tx1.x != tx2.x {
		t.Fatalf("queues on the same (interface, queue) do not share a socket")
	}
	if tx1.Info().XDPMode != "" {
		t.Errorf("transmit-only queue reports an XDP program")
	}
	inNS(t, tp.ns, func() {
		if q, err := be.OpenQueue(tp.a, backend.QueueConfig{Role: backend.RoleUplinkRX}); err == nil {
			q.Close()
			t.Errorf("second receiver on queue 0 was accepted")
		}
	})
	if _, err := tx1.Recv(backend.NewBatch(4)); err == nil {
		t.Errorf("Recv on a transmit-only queue succeeded")
	}
	sniffB := tp.packetSocket(t, tp.bIdx)
	var wg sync.WaitGroup
	for i, q := range []*Queue{tx1, tx2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 10; k++ {
				if n, err := q.Send([][]byte{frame(macB, macA, uint32(i*100+k), 60)}); n != 1 || err != nil {
					t.Errorf("send: %d %v", n, err)
				}
			}
		}()
	}
	wg.Wait()
	fromA := func(f []byte) bool { return len(f) >= 14 && bytes.Equal(f[6:12], macA) }
	if got := readRaw(sniffB, 500*time.Millisecond, fromA); len(got) != 20 {
		t.Fatalf("peer got %d frames from two TX queues, want 20", len(got))
	}
	// A frame left unread in the RX ring when the receiver closes must not
	// reach the next receiver.
	fd := tp.packetSocket(t, tp.bIdx)
	sendRaw(t, fd, tp.bIdx, frame(macA, macB, 8, 60))
	time.Sleep(50 * time.Millisecond)
	rx.Close()
	if attached, _ := tp.xdpAttached(t, tp.a); attached {
		t.Errorf("program still attached with no receiver left")
	}
	if n, err := tx1.Send([][]byte{frame(macB, macA, 1, 60)}); n != 1 || err != nil {
		t.Fatalf("send after receiver closed: %d %v", n, err)
	}
	if got := readRaw(sniffB, 300*time.Millisecond, fromA); len(got) != 1 {
		t.Fatalf("peer got %d frames after receiver closed, want 1", len(got))
	}
	// A new receiver can join the surviving socket.
	rx2 := tp.open(t, be, tp.a, backend.QueueConfig{Role: backend.RoleUplinkRX})
	f := frame(macA, macB, 9, 60)
	sendRaw(t, fd, tp.bIdx, f)
	if got := recvFrames(t, rx2, 1, 5*time.Second); !bytes.Equal(got[0], f) {
		t.Fatalf("got %x want %x", got[0], f)
	}
}

func TestProbe(t *testing.T) {
	tp := newTopo(t)
	inNS(t, tp.ns, func() {
		if err := Probe(tp.a); err != nil {
			t.Errorf("Probe(%s) = %v, want nil", tp.a, err)
		}
		if err := Probe("nope0"); err == nil {
			t.Errorf("Probe of a missing interface succeeded")
		}
		if err := Probe("lo"); err == nil {
			t.Errorf("Probe of loopback succeeded")
		} else {
			t.Logf("Probe(lo): %v", err)
		}
	})
	if attached, _ := tp.xdpAttached(t, tp.a); attached {
		t.Errorf("Probe left an XDP program attached")
	}
}

// TestTapPort runs a port queue on a real tap device, the VM case: frames
// the "VM" writes into the tap fd arrive byte-identical through Recv, and
// frames we Send come out of the tap fd.
func TestTapPort(t *testing.T) {
	tp := newTopo(t)
	var fd *os.File
	inNS(t, tp.ns, func() {
		tap := &netlink.Tuntap{
			LinkAttrs:  netlink.LinkAttrs{Name: "xskt", MTU: 1600},
			Mode:       netlink.TUNTAP_MODE_TAP,
			Flags:      netlink.TUNTAP_DEFAULTS | netlink.TUNTAP_NO_PI,
			Queues:     1,
			NonPersist: true,
		}
		if err := netlink.LinkAdd(tap); err != nil {
			t.Skipf("cannot create tap: %v", err)
		}
		fd = tap.Fds[0]
		if err := netlink.LinkSetUp(tap); err != nil {
			t.Fatalf("tap up: %v", err)
		}
	})
	t.Cleanup(func() { fd.Close() })
	q := tp.open(t, New(testOptions(t)), "xskt", backend.QueueConfig{Role: backend.RolePort})
	t.Logf("queue on tap: xdp mode %q, zero-copy %v", q.Info().XDPMode, q.Info().ZeroCopy)

	want := [][]byte{
		frame(macA, macB, 1, 60),
		frame(macA, macB, 2, 64, tag(0x8100, 10)),
		frame(macA, macB, 3, 1518, tag(0x88a8, 3), tag(0x8100, 10)),
	}
	for _, f := range want {
		if _, err := fd.Write(f); err != nil {
			t.Fatalf("write to tap: %v", err)
		}
	}
	got := recvFrames(t, q, len(want), 5*time.Second)
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("frame %d differs:\n got %x\nwant %x", i, got[i], want[i])
		}
	}

	out := [][]byte{frame(macB, macA, 10, 60), frame(macB, macA, 11, 90, tag(0x8100, 5))}
	if n, err := q.Send(out); n != len(out) || err != nil {
		t.Fatalf("Send = %d, %v", n, err)
	}
	raw, err := fd.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var read [][]byte
	buf := make([]byte, 4096)
	deadline := time.Now().Add(2 * time.Second)
	for len(read) < len(out) && time.Now().Before(deadline) {
		var n int
		var rerr error
		raw.Read(func(fd uintptr) bool {
			n, rerr = unix.Read(int(fd), buf)
			return true
		})
		if rerr != nil || n <= 0 {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		if bytes.Equal(buf[6:12], macA) {
			read = append(read, bytes.Clone(buf[:n]))
		}
	}
	if len(read) != len(out) {
		t.Fatalf("read %d frames from the tap, want %d", len(read), len(out))
	}
	for i := range out {
		if !bytes.Equal(read[i], out[i]) {
			t.Errorf("tap frame %d differs:\n got %x\nwant %x", i, read[i], out[i])
		}
	}
}

// TestPromiscHeldWhileOpen: Promisc raises the interface's promiscuity
// for the queue's lifetime only.
func TestPromiscHeldWhileOpen(t *testing.T) {
	tp := newTopo(t)
	promisc := func() int {
		var n int
		inNS(t, tp.ns, func() {
			l, err := netlink.LinkByName(tp.a)
			if err != nil {
				t.Fatal(err)
			}
			n = l.Attrs().Promisc
		})
		return n
	}
	if p := promisc(); p != 0 {
		t.Fatalf("promiscuity %d before Open", p)
	}
	q := tp.open(t, New(testOptions(t)), tp.a, backend.QueueConfig{Role: backend.RoleUplinkRX, Promisc: true})
	if p := promisc(); p == 0 {
		t.Errorf("interface not promiscuous while the queue is open")
	}
	q.Close()
	if p := promisc(); p != 0 {
		t.Errorf("promiscuity %d after Close", p)
	}
}

// TestConcurrentOpenSameQueue: transmit queues opened at once on one uplink
// queue all succeed and share a socket.
func TestConcurrentOpenSameQueue(t *testing.T) {
	tp := newTopo(t)
	be := New(testOptions(t))
	const n = 8
	qs := make([]*Queue, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inNS(t, tp.ns, func() {
				qs[i], errs[i] = be.OpenQueue(tp.a, backend.QueueConfig{Role: backend.RoleUplinkTX, QueueID: 0})
			})
		}()
	}
	wg.Wait()
	for i := 0; i < n; i++ {
		if errs[i] != nil {
			t.Fatalf("open %d: %v", i, errs[i])
		}
		defer qs[i].Close()
		if qs[i].x != qs[0].x {
			t.Errorf("queue %d has its own socket", i)
		}
	}
	if len(be.socks) != 1 {
		t.Errorf("%d sockets registered, want 1", len(be.socks))
	}
}

// Frames the device cannot carry (longer than MTU + header + one tag) are
// refused and counted, not counted as sent and dropped by the kernel.
func TestSendCountsFramesOverMTU(t *testing.T) {
	tp := newTopo(t)
	be := New(testOptions(t))
	q := tp.open(t, be, tp.a, backend.QueueConfig{Role: backend.RolePort})
	const mtu = 1600 // newTopo sets it on both veth ends
	ok, over := frame(macB, macA, 1, mtu+18), frame(macB, macA, 2, mtu+19)
	n, err := q.Send([][]byte{ok, over})
	if err != nil {
		t.Fatal(err)
	}
	if st := q.Stats(); n != 1 || st.TxPackets != 1 || st.TxErrors != 1 {
		t.Fatalf("Send = %d, stats %+v: want the MTU+18 frame sent and the MTU+19 one counted as an error", n, st)
	}
}
