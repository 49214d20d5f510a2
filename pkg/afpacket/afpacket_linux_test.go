//go:build linux

package afpacket

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vswitch/vswitch/internal/rxwait"
	"github.com/vswitch/vswitch/pkg/backend"
	"golang.org/x/sys/unix"
)

// smallRing keeps tests light: 8 blocks of 64 KiB (30 slots each).
func smallRing() *Backend { return &Backend{BlockSize: 64 << 10, Blocks: 8} }

// rxCases are frames whose outermost tag the kernel strips on receive.
func rxCases() []struct {
	name  string
	frame []byte
} {
	return []struct {
		name  string
		frame []byte
	}{
		{"untagged", ethFrame(1, nil, 0x88b5, 46)},
		{"dot1q vid100 pcp5", ethFrame(2, []tag{{0x8100, 5<<13 | 100}}, 0x88b5, 46)},
		{"dot1q dei vid4094", ethFrame(3, []tag{{0x8100, 1<<12 | 4094}}, 0x88b5, 60)},
		{"dot1ad only", ethFrame(4, []tag{{0x88a8, 300}}, 0x88b5, 46)},
		{"qinq 88a8+8100", ethFrame(5, []tag{{0x88a8, 3<<13 | 200}, {0x8100, 5<<13 | 100}}, 0x88b5, 46)},
		{"priority tagged tci 0", ethFrame(6, []tag{{0x8100, 0}}, 0x88b5, 46)},
		{"priority tagged pcp5 vid0", ethFrame(7, []tag{{0x8100, 5 << 13}}, 0x88b5, 46)},
		{"priority tag over dot1q", ethFrame(8, []tag{{0x8100, 0}, {0x8100, 100}}, 0x88b5, 46)},
		{"tpid 9100 (not stripped)", ethFrame(9, []tag{{0x9100, 100}}, 0x88b5, 46)},
		{"dot1q ipv4", func() []byte {
			u := udpFrame(10, [4]byte{10, 0, 0, 1}, [4]byte{10, 0, 0, 2}, 1000, 2000, 32)
			// insert a tag after the addresses
			return append(append(append([]byte{}, u[:12]...), 0x81, 0x00, 0x00, 0x64), u[12:]...)
		}()},
		{"dot1q full size 1518", ethFrame(11, []tag{{0x8100, 100}}, 0x88b5, 1500)},
		// The kernel drops a tagged frame with less than 2 bytes after the inner
		// ethertype before packet sockets see it; 2 bytes is the shortest that passes.
		{"runt tagged", ethFrame(12, []tag{{0x8100, 7}}, 0x88b5, 2)},
	}
}

// TestRecvRebuildsTags is the central test: frames sent from the peer come
// out of Recv byte-identical, tags the kernel stripped included, with at
// least backend.Headroom writable bytes in front.
func TestRecvRebuildsTags(t *testing.T) {
	n := newTestNet(t)
	q := n.open(smallRing(), "vb", backend.QueueConfig{Role: backend.RolePort})
	ch, _ := collect(q)
	peer := n.raw("va", false)

	cases := rxCases()
	for _, c := range cases {
		peer.send(t, c.frame)
	}
	got := readFrames(ch, len(cases), 3*time.Second)
	bySeq := map[byte]rxFrame{}
	for _, f := range got {
		bySeq[f.data[11]] = f
	}
	for i, c := range cases {
		f, ok := bySeq[c.frame[11]]
		if !ok {
			t.Errorf("%s: not received", c.name)
			continue
		}
		if !bytes.Equal(f.data, c.frame) {
			t.Errorf("%s:\n got % x\nwant % x", c.name, f.data, c.frame)
		}
		if f.off < backend.Headroom {
			t.Errorf("%s: Off %d < Headroom %d", c.name, f.off, backend.Headroom)
		}
		if i < len(got) && got[i].data[11] != c.frame[11] {
			t.Errorf("%s: out of order", c.name)
		}
	}
	st := q.Stats()
	if st.RxPackets < uint64(len(cases)) {
		t.Errorf("RxPackets %d, want >= %d", st.RxPackets, len(cases))
	}
}

// TestRecvHeadroomWritable pushes a tag into the headroom in place (what the
// pipeline does) and checks neighbouring frames are untouched.
func TestRecvHeadroomWritable(t *testing.T) {
	n := newTestNet(t)
	q := n.open(smallRing(), "vb", backend.QueueConfig{Role: backend.RolePort})
	peer := n.raw("va", false)
	var want [][]byte
	for i := 0; i < 20; i++ {
		tags := []tag{{0x8100, uint16(i + 1)}}
		if i%2 == 0 {
			tags = nil
		}
		f := ethFrame(i, tags, 0x88b5, 46+i)
		want = append(want, f)
		peer.send(t, f)
	}
	time.Sleep(20 * time.Millisecond) // let all frames land, so one Recv may get several
	b := backend.NewBatch(64)
	got := 0
	deadline := time.Now().Add(3 * time.Second)
	for got < len(want) && time.Now().Before(deadline) {
		k, err := q.Recv(b)
		if err != nil {
			t.Fatal(err)
		}
		// push an 8-byte double tag into every frame first ...
		for i := 0; i < k; i++ {
			if !isTestFrame(b.Frame(i)) {
				continue
			}
			off := b.Off[i] - 8
			buf := b.Buf[i]
			copy(buf[off:off+12], buf[b.Off[i]:b.Off[i]+12])
			copy(buf[off+12:], []byte{0x88, 0xa8, 0, 9, 0x81, 0, 0, 9})
			b.Off[i], b.Len[i] = off, b.Len[i]+8
		}
		// ... then check each against what was sent.
		for i := 0; i < k; i++ {
			f := b.Frame(i)
			if !isTestFrame(f) {
				continue
			}
			w := want[got]
			exp := append(append(append([]byte{}, w[:12]...), 0x88, 0xa8, 0, 9, 0x81, 0, 0, 9), w[12:]...)
			if !bytes.Equal(f, exp) {
				t.Fatalf("frame %d after push:\n got % x\nwant % x", got, f, exp)
			}
			got++
		}
		q.Release(b)
	}
	if got != len(want) {
		t.Fatalf("received %d of %d frames", got, len(want))
	}
}

// TestSendBatch sends a batch from one end and receives it with a Queue on
// the other: complete, in order, tags intact; an oversize frame is counted
// and skipped without hurting the rest.
func TestSendBatch(t *testing.T) {
	n := newTestNet(t)
	tx := n.open(smallRing(), "va", backend.QueueConfig{Role: backend.RolePort})
	rx := n.open(smallRing(), "vb", backend.QueueConfig{Role: backend.RolePort})
	ch, _ := collect(rx)

	const N = 150 // more than one sendmmsg batch
	var frames [][]byte
	for i := 0; i < N; i++ {
		var tags []tag
		switch i % 3 {
		case 1:
			tags = []tag{{0x8100, uint16(5<<13 | (i % 4094) + 1)}}
		case 2:
			tags = []tag{{0x88a8, 200}, {0x8100, uint16(i%4094 + 1)}}
		}
		frames = append(frames, ethFrame(i, tags, 0x88b5, 46+i%200))
	}
	sent, err := tx.Send(frames)
	if err != nil || sent != N {
		t.Fatalf("Send = %d, %v; want %d, nil", sent, err, N)
	}
	got := expectFrames(t, ch, N, 3*time.Second)
	for i := range frames {
		if !bytes.Equal(got[i].data, frames[i]) {
			t.Fatalf("frame %d:\n got % x\nwant % x", i, got[i].data, frames[i])
		}
	}
	st := tx.Stats()
	if st.TxPackets != N || st.TxErrors != 0 {
		t.Fatalf("tx stats %+v", st)
	}

	// An oversize frame in the middle: counted, skipped, the others go.
	big := ethFrame(200, nil, 0x88b5, 1600)
	mixed := [][]byte{ethFrame(201, nil, 0x88b5, 46), big, ethFrame(202, nil, 0x88b5, 46), {}}
	sent, err = tx.Send(mixed)
	if err != nil || sent != 2 {
		t.Fatalf("Send(mixed) = %d, %v; want 2, nil", sent, err)
	}
	if st := tx.Stats(); st.TxErrors != 2 {
		t.Fatalf("TxErrors = %d, want 2 (oversize + empty)", st.TxErrors)
	}
	got = expectFrames(t, ch, 2, 2*time.Second)
	if !bytes.Equal(got[0].data, mixed[0]) || !bytes.Equal(got[1].data, mixed[2]) {
		t.Fatalf("frames around the oversize one were not delivered intact")
	}
}

// TestSendMTULimits pins down the kernel rule the package doc describes:
// MTU+14+4 bytes go out only when the outer TPID is 0x8100.
func TestSendMTULimits(t *testing.T) {
	n := newTestNet(t)
	tx := n.open(smallRing(), "va", backend.QueueConfig{Role: backend.RoleUplinkTX})
	rx := n.open(smallRing(), "vb", backend.QueueConfig{Role: backend.RolePort})
	ch, _ := collect(rx)
	ok1 := ethFrame(1, []tag{{0x8100, 100}}, 0x88b5, 1500)             // 1518
	ok2 := ethFrame(2, nil, 0x88b5, 1500)                              // 1514
	bad1 := ethFrame(3, []tag{{0x88a8, 100}}, 0x88b5, 1500)            // 1518, S-tag
	bad2 := ethFrame(4, []tag{{0x8100, 100}}, 0x88b5, 1501)            // 1519
	bad3 := ethFrame(5, []tag{{0x88a8, 1}, {0x8100, 2}}, 0x88b5, 1500) // 1522
	sent, err := tx.Send([][]byte{bad1, ok1, bad2, ok2, bad3})
	if err != nil || sent != 2 {
		t.Fatalf("Send = %d, %v; want 2, nil", sent, err)
	}
	if st := tx.Stats(); st.TxErrors != 3 {
		t.Fatalf("TxErrors = %d, want 3", st.TxErrors)
	}
	got := expectFrames(t, ch, 2, 2*time.Second)
	if !bytes.Equal(got[0].data, ok1) || !bytes.Equal(got[1].data, ok2) {
		t.Fatal("full-size frames not received intact")
	}
}

// TestSendConcurrent: several goroutines Send at once; every frame arrives.
func TestSendConcurrent(t *testing.T) {
	n := newTestNet(t)
	tx := n.open(smallRing(), "va", backend.QueueConfig{Role: backend.RoleUplinkTX, Batch: 8})
	rx := n.open(smallRing(), "vb", backend.QueueConfig{Role: backend.RolePort})
	ch, _ := collect(rx)
	const G, per = 8, 40
	var wg sync.WaitGroup
	for g := 0; g < G; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < per; i += 4 {
				var fs [][]byte
				for j := i; j < i+4; j++ {
					f := ethFrame(g, nil, 0x88b5, 46)
					f[14] = byte(j)
					fs = append(fs, f)
				}
				if k, err := tx.Send(fs); k != 4 || err != nil {
					t.Errorf("Send = %d, %v", k, err)
				}
				time.Sleep(time.Millisecond) // stay below the veth backlog
			}
		}(g)
	}
	wg.Wait()
	got := expectFrames(t, ch, G*per, 3*time.Second)
	seen := map[[2]byte]bool{}
	for _, f := range got {
		seen[[2]byte{f.data[11], f.data[14]}] = true
	}
	if len(seen) != G*per {
		t.Fatalf("%d distinct frames, want %d", len(seen), G*per)
	}
}

// TestIgnoreOutgoing: frames leaving the interface, ours or anyone's, are
// not received by our RX ring. A plain packet socket on the same interface
// shows those frames are visible as outgoing without the option.
func TestIgnoreOutgoing(t *testing.T) {
	n := newTestNet(t)
	q := n.open(smallRing(), "va", backend.QueueConfig{Role: backend.RolePort})
	own, _ := collect(q)
	peer := n.open(smallRing(), "vb", backend.QueueConfig{Role: backend.RolePort})
	atPeer, _ := collect(peer)
	sniffer := n.raw("va", true)
	other := n.raw("va", false) // goes through the qdisc: seen by sniffers

	var fs [][]byte
	for i := 0; i < 10; i++ {
		fs = append(fs, ethFrame(i, []tag{{0x8100, 100}}, 0x88b5, 46))
	}
	if k, err := q.Send(fs); k != len(fs) || err != nil {
		t.Fatalf("Send = %d, %v", k, err)
	}
	expectFrames(t, atPeer, len(fs), 2*time.Second)
	other.send(t, ethFrame(50, nil, 0x88b5, 46), ethFrame(51, nil, 0x88b5, 46))
	expectFrames(t, atPeer, 2, 2*time.Second)

	if seen := sniffer.recvMatching(300 * time.Millisecond); len(seen) != 2 {
		t.Fatalf("plain sniffer saw %d outgoing frames, want the 2 sent through the qdisc", len(seen))
	}
	expectNone(t, own, 200*time.Millisecond, "own RX ring")
}

// TestFanout: two RoleUplinkRX queues in one group share many flows; every
// frame is received exactly once, both get some, and a flow stays on one.
func TestFanout(t *testing.T) {
	n := newTestNet(t)
	cfg := backend.QueueConfig{Role: backend.RoleUplinkRX, FanoutGroup: uint16(os.Getpid()), Promisc: true}
	q1 := n.open(smallRing(), "vb", cfg)
	q2 := n.open(smallRing(), "vb", cfg)
	c1, _ := collect(q1)
	c2, _ := collect(q2)
	peer := n.raw("va", false)

	const flows, perFlow = 64, 4
	for r := 0; r < perFlow; r++ {
		for f := 0; f < flows; f++ {
			fr := udpFrame(f, [4]byte{10, 1, byte(f), 1}, [4]byte{10, 2, 0, 1}, uint16(1000+f*17), 53, 16)
			fr[len(fr)-1] = byte(r)
			peer.send(t, fr)
		}
	}
	total := flows * perFlow
	owner := map[int]int{} // flow -> queue
	count := [3]int{}
	seen := map[[2]int]bool{}
	deadline := time.After(3 * time.Second)
	for got := 0; got < total; got++ {
		var f rxFrame
		var which int
		select {
		case f = <-c1:
			which = 1
		case f = <-c2:
			which = 2
		case <-deadline:
			t.Fatalf("received %d of %d frames (q1 %d, q2 %d)", got, total, count[1], count[2])
		}
		flow, rep := int(f.data[11]), int(f.data[len(f.data)-1])
		if seen[[2]int{flow, rep}] {
			t.Fatalf("flow %d rep %d received twice", flow, rep)
		}
		seen[[2]int{flow, rep}] = true
		if o, ok := owner[flow]; ok && o != which {
			t.Errorf("flow %d split between queues", flow)
		}
		owner[flow] = which
		count[which]++
	}
	if count[1] == 0 || count[2] == 0 {
		t.Fatalf("fanout did not spread: q1 %d, q2 %d", count[1], count[2])
	}
	t.Logf("fanout: q1 %d frames, q2 %d frames", count[1], count[2])
	// Frames leaving the uplink must not reach the group either (fanout has
	// its own ignore-outgoing flag).
	out := n.raw("vb", false)
	for f := 0; f < 16; f++ {
		out.send(t, udpFrame(100+f, [4]byte{10, 2, 0, 1}, [4]byte{10, 1, byte(f), 1}, 53, uint16(1000+f), 16))
	}
	expectNone(t, c1, 100*time.Millisecond, "q1 extra or outgoing")
	expectNone(t, c2, 50*time.Millisecond, "q2 extra or outgoing")
}

// TestCloseConcurrent closes a queue while one goroutine is blocked in Recv
// and another keeps calling Send: both return ErrClosed promptly.
func TestCloseConcurrent(t *testing.T) {
	n := newTestNet(t)
	q := n.open(smallRing(), "va", backend.QueueConfig{Role: backend.RolePort})
	recvErr := make(chan error, 1)
	sendErr := make(chan error, 1)
	go func() {
		b := backend.NewBatch(32)
		for {
			if _, err := q.Recv(b); err != nil {
				recvErr <- err
				return
			}
			q.Release(b)
		}
	}()
	go func() {
		f := [][]byte{ethFrame(1, nil, 0x88b5, 46)}
		for {
			if _, err := q.Send(f); err != nil {
				sendErr <- err
				return
			}
		}
	}()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	if err := q.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, c := range []struct {
		name string
		ch   chan error
	}{{"Recv", recvErr}, {"Send", sendErr}} {
		select {
		case err := <-c.ch:
			if !errors.Is(err, backend.ErrClosed) {
				t.Errorf("%s returned %v, want ErrClosed", c.name, err)
			}
		case <-time.After(time.Second):
			t.Fatalf("%s did not return within 1s of Close", c.name)
		}
	}
	t.Logf("Close and wake-up took %v", time.Since(start))
	if err := q.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := q.Send([][]byte{ethFrame(1, nil, 0x88b5, 46)}); !errors.Is(err, backend.ErrClosed) {
		t.Errorf("Send after Close: %v", err)
	}
}

// TestCloseWithOutstandingBatch: frames received before Close stay readable
// until Release (the ring is unmapped only then).
func TestCloseWithOutstandingBatch(t *testing.T) {
	n := newTestNet(t)
	q := n.open(smallRing(), "vb", backend.QueueConfig{Role: backend.RolePort})
	peer := n.raw("va", false)
	want := ethFrame(3, []tag{{0x8100, 42}}, 0x88b5, 46)
	peer.send(t, want)
	if _, err := q.Recv(backend.NewBatch(0)); err == nil || errors.Is(err, backend.ErrClosed) {
		t.Fatalf("Recv into a batch of capacity 0: %v, want an error", err)
	}
	b := backend.NewBatch(8)
	k, err := q.Recv(b)
	if err != nil || k < 1 {
		t.Fatalf("Recv = %d, %v", k, err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if q.rx.unmapped {
		t.Fatal("ring unmapped while a batch is outstanding")
	}
	if !bytes.Equal(b.Frame(k-1), want) { // reading after Close must be safe
		t.Fatalf("frame after Close: % x", b.Frame(k-1))
	}
	q.Release(b)
	if !q.rx.unmapped {
		t.Fatal("ring still mapped after the last Release following Close")
	}
	if _, err := q.Recv(b); !errors.Is(err, backend.ErrClosed) {
		t.Fatalf("Recv after Close: %v", err)
	}
}

func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestNoFDLeak opens and closes 200 queues of every role.
func TestNoFDLeak(t *testing.T) {
	n := newTestNet(t)
	be := &Backend{BlockSize: 16 << 10, Blocks: 2}
	roles := []backend.Role{backend.RolePort, backend.RoleUplinkRX, backend.RoleUplinkTX}
	// warm up (runtime, netns handles)
	q, err := n.tryOpen(be, "va", backend.QueueConfig{})
	if err != nil {
		t.Fatal(err)
	}
	_ = q.Close()
	before := countFDs(t)
	for i := 0; i < 200; i++ {
		cfg := backend.QueueConfig{Role: roles[i%3], FanoutGroup: 77, Promisc: i%2 == 0}
		q, err := n.tryOpen(be, "va", cfg)
		if err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		if err := q.Close(); err != nil {
			t.Fatalf("cycle %d close: %v", i, err)
		}
	}
	// a failing open must not leak either
	for i := 0; i < 10; i++ {
		if _, err := n.tryOpen(be, "nope0", backend.QueueConfig{}); err == nil {
			t.Fatal("open of a missing interface succeeded")
		}
	}
	if after := countFDs(t); after != before {
		t.Fatalf("fd count %d before, %d after 200 open/close cycles", before, after)
	}
}

// TestInterfaceDeleted: deleting the interface under a blocked Recv makes it
// return an error (not hang, not spin); Send reports an error too.
func TestInterfaceDeleted(t *testing.T) {
	n := newTestNet(t)
	q := n.open(smallRing(), "va", backend.QueueConfig{Role: backend.RolePort})
	recvErr := make(chan error, 1)
	go func() {
		b := backend.NewBatch(32)
		for {
			k, err := q.Recv(b)
			if err != nil {
				recvErr <- err
				return
			}
			if k > 0 {
				q.Release(b)
			}
		}
	}()
	time.Sleep(50 * time.Millisecond)
	n.ip("link", "del", "va")
	select {
	case err := <-recvErr:
		if errors.Is(err, backend.ErrClosed) || !errors.Is(err, unix.ENETDOWN) {
			t.Fatalf("Recv after delete: %v, want a wrapped ENETDOWN", err)
		}
		t.Logf("Recv: %v", err)
	case <-time.After(2 * time.Second):
		t.Fatal("Recv still blocked 2s after the interface was deleted")
	}
	_, err := q.Send([][]byte{ethFrame(1, nil, 0x88b5, 46)})
	if err == nil || errors.Is(err, backend.ErrClosed) {
		t.Fatalf("Send after delete: %v, want an interface error", err)
	}
	t.Logf("Send: %v", err)
	var op *OpError
	if !errors.As(err, &op) || op.Iface != "va" {
		t.Fatalf("Send error %v is not an *OpError naming the interface", err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestOpenWhileDown: a queue opened on a down interface (a tap before its
// VM runs) starts receiving when the interface comes up, without a stale
// error from Recv.
func TestOpenWhileDown(t *testing.T) {
	n := newTestNet(t)
	n.ip("link", "set", "vb", "down")
	q := n.open(smallRing(), "vb", backend.QueueConfig{Role: backend.RolePort})
	ch, errc := collect(q)
	n.ip("link", "set", "vb", "up")
	n.waitUp("va")
	n.waitUp("vb")
	want := ethFrame(1, []tag{{0x8100, 100}}, 0x88b5, 46)
	n.raw("va", false).send(t, want)
	select {
	case f := <-ch:
		if !bytes.Equal(f.data, want) {
			t.Fatalf("got % x", f.data)
		}
	case err := <-errc:
		t.Fatalf("Recv: %v", err)
	case <-time.After(2 * time.Second):
		t.Fatal("no frame after the interface came up")
	}
}

// TestTxOnly: a RoleUplinkTX queue receives nothing and refuses Recv.
func TestTxOnly(t *testing.T) {
	n := newTestNet(t)
	q := n.open(smallRing(), "vb", backend.QueueConfig{Role: backend.RoleUplinkTX})
	if _, err := q.Recv(backend.NewBatch(4)); err == nil || errors.Is(err, backend.ErrClosed) {
		t.Fatalf("Recv on TX-only queue: %v", err)
	}
	if q.rx != nil {
		t.Fatal("TX-only queue has an RX ring")
	}
	peer := n.raw("va", false)
	peer.send(t, ethFrame(1, nil, 0x88b5, 46))
	time.Sleep(20 * time.Millisecond)
	// SIOCINQ on a packet socket: length of the first queued frame.
	rcvq, err := unix.IoctlGetInt(q.fd, unix.SIOCINQ)
	if err != nil || rcvq != 0 {
		t.Fatalf("TX-only socket has %d bytes queued (err %v)", rcvq, err)
	}
}

func TestOpenErrors(t *testing.T) {
	n := newTestNet(t)
	_, err := n.tryOpen(New(), "missing0", backend.QueueConfig{})
	var op *OpError
	if !errors.As(err, &op) || op.Op != "open" || !errors.Is(err, unix.ENODEV) {
		t.Fatalf("open missing interface: %v", err)
	}
	if _, err := n.tryOpen(New(), "va", backend.QueueConfig{Role: 9}); err == nil {
		t.Fatal("unknown role accepted")
	}
}

// TestRingWrapWithHeldBatches uses a two-block ring (3 slots of 2128 bytes
// per 8 KiB block: 6 slots) while the consumer holds up to three batches of
// 4 before releasing them, so the cursor keeps wrapping onto held slots:
// frames never repeat, never reorder, held frames are not overwritten by
// the kernel, and every frame is received or counted as dropped.
func TestRingWrapWithHeldBatches(t *testing.T) {
	n := newTestNet(t)
	q := n.open(&Backend{BlockSize: 8 << 10, Blocks: 2}, "vb", backend.QueueConfig{Role: backend.RolePort})
	peer := n.raw("va", false)
	const total = 300
	go func() {
		for i := 0; i < total; i++ {
			f := ethFrame(i, []tag{{0x8100, uint16(i%4000 + 1)}}, 0x88b5, 600)
			_, _ = unix.Write(peer.fd, f)
			if i%4 == 3 {
				time.Sleep(200 * time.Microsecond)
			}
		}
	}()
	batches := []*backend.Batch{backend.NewBatch(4), backend.NewBatch(4), backend.NewBatch(4)}
	last, got := -1, 0
	check := func(b *backend.Batch) {
		for i := 0; i < b.N; i++ {
			f := b.Frame(i)
			if !isTestFrame(f) {
				continue
			}
			seq := int(binary.BigEndian.Uint32(f[18:]))
			if !bytes.Equal(f, ethFrame(seq, []tag{{0x8100, uint16(seq%4000 + 1)}}, 0x88b5, 600)) {
				t.Fatalf("held frame %d corrupted", seq)
			}
			if seq <= last {
				t.Fatalf("frame %d after %d: repeated or reordered", seq, last)
			}
			last = seq
			got++
		}
	}
	// Recv blocks when the last frames were dropped: Close ends the loop.
	stopper := time.AfterFunc(time.Second, func() { _ = q.Close() })
	defer stopper.Stop()
	var st backend.QueueStats
	held := 0
loop:
	for last < total-1 {
		for _, b := range batches {
			if _, err := q.Recv(b); err != nil {
				if errors.Is(err, backend.ErrClosed) {
					break loop
				}
				if errors.Is(err, ErrRingHeld) {
					held++
					break // release what we hold, then go on
				}
				t.Fatal(err)
			}
		}
		st = q.Stats()
		for _, b := range batches {
			check(b)
			q.Release(b)
		}
	}
	for _, b := range batches {
		check(b)
		q.Release(b)
	}
	if s := q.Stats(); s.RxDropped > st.RxDropped {
		st = s
	}
	t.Logf("received %d of %d, ring drops %d, ErrRingHeld %d times", got, total, st.RxDropped, held)
	if got < total/4 {
		t.Fatalf("received only %d of %d frames", got, total)
	}
	if uint64(got)+st.RxDropped != total {
		t.Errorf("received %d + dropped %d != sent %d: frames lost without being counted", got, st.RxDropped, total)
	}
	if st.RxDropped > 0 && customStats(q)[StatRingFreezes] == 0 {
		t.Errorf("drops without a ring freeze")
	}
}

// TestIdleRecvDoesNotSpin: a Recv waiting on an idle interface must sleep in
// the kernel, also after its poll timeout expired once (ppoll writes the
// time left back into its timeout argument; reusing it made every later
// ppoll return at once and burn a core).
func TestIdleRecvDoesNotSpin(t *testing.T) {
	n := newTestNet(t)
	q := n.open(smallRing(), "va", backend.QueueConfig{Role: backend.RolePort})
	done := make(chan struct{})
	go func() {
		defer close(done)
		b := backend.NewBatch(32)
		for {
			if _, err := q.Recv(b); err != nil {
				return
			}
			q.Release(b)
		}
	}()
	time.Sleep(time.Duration(pollTimeoutMillis)*time.Millisecond + 200*time.Millisecond)
	cpu := func() time.Duration {
		var ru unix.Rusage
		if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	before := cpu()
	time.Sleep(time.Second)
	used := cpu() - before
	q.Close()
	<-done
	if used > 200*time.Millisecond {
		t.Fatalf("an idle Recv used %v of CPU in 1 s: it spins", used)
	}
	t.Logf("idle Recv used %v of CPU in 1 s", used)
}

// TestRecvWakesPerFrame: a Recv blocked on an idle queue returns as soon as
// a frame arrives, not after a block retire timer (the TPACKET_V3 ring
// waited up to tp_retire_blk_tov, >= 1 ms, per ring; a frame crossing the
// switch crosses four rings). Also when the caller still holds the batch
// with the previous frame (the slot before the kernel's head is then ours,
// so the socket polls readable: wait must not spin; the netpoller is edge
// triggered by itself, a ppoll on the goroutine's own thread must switch
// to an edge-triggered epoll). Both ways of waiting: in the netpoller
// (light load) and, forced before every Recv, on the goroutine's own
// thread (under load). Between frames, and for a second at the end, the
// Recv goroutine's own thread must burn no CPU (getrusage RUSAGE_THREAD on
// its locked thread).
func TestRecvWakesPerFrame(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2)) // a queue spreads only if a P stays free
	}
	for _, mode := range []struct {
		name           string
		hold, threaded bool
	}{
		{"released", false, false},
		{"holding-previous-batch", true, false},
		{"released-own-thread", false, true},
		{"holding-previous-batch-own-thread", true, true},
	} {
		hold := mode.hold
		t.Run(mode.name, func(t *testing.T) {
			n := newTestNet(t)
			q := n.open(smallRing(), "vb", backend.QueueConfig{Role: backend.RolePort})
			peer := n.raw("va", false)
			type result struct {
				at      time.Time
				seq     int
				idleCPU time.Duration // CPU of the last (idle) Recv call
				idle    time.Duration // its wall time
				arms    int           // edge-triggered waits armed
			}
			res := make(chan result, 256)
			go func() {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				threadCPU := func() time.Duration {
					var ru unix.Rusage
					_ = unix.Getrusage(unix.RUSAGE_THREAD, &ru)
					return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
				}
				batches := [2]*backend.Batch{backend.NewBatch(32), backend.NewBatch(32)}
				for i := 0; ; i++ {
					b := batches[i%2]
					if mode.threaded {
						q.waiter.Received(rxwait.SpreadBatch) // as if a backlog had come
						if !q.waiter.Spread() {
							t.Error("a backlog did not make the queue wait on its own thread")
						}
					}
					cpu0, t0 := threadCPU(), time.Now()
					k, err := q.Recv(b)
					if err != nil {
						res <- result{seq: -1, idleCPU: threadCPU() - cpu0, idle: time.Since(t0), arms: q.rx.arms}
						return
					}
					now := time.Now()
					for j := 0; j < k; j++ {
						if f := b.Frame(j); isTestFrame(f) {
							res <- result{at: now, seq: int(binary.BigEndian.Uint32(f[18:]))}
						}
					}
					if hold {
						q.Release(batches[(i+1)%2]) // keep b while the next Recv waits
					} else {
						q.Release(b)
					}
				}
			}()
			const probes = 40
			var lat []time.Duration
			for i := 0; i < probes; i++ {
				time.Sleep(3 * time.Millisecond) // Recv is blocked again by now
				sent := time.Now()
				peer.send(t, ethFrame(i, []tag{{0x8100, 100}}, 0x88b5, 46))
				select {
				case r := <-res:
					if r.seq != i {
						t.Fatalf("frame %d received as %d", i, r.seq)
					}
					lat = append(lat, r.at.Sub(sent))
				case <-time.After(2 * time.Second):
					t.Fatalf("frame %d not received within 2 s", i)
				}
			}
			time.Sleep(time.Second)
			_ = q.Close()
			r := <-res
			slices.Sort(lat)
			p50, p90 := lat[len(lat)/2], lat[len(lat)*9/10]
			t.Logf("send -> Recv return: min %v p50 %v p90 %v max %v; idle Recv: %v of CPU in %v (edge-triggered waits: %d)",
				lat[0], p50, p90, lat[len(lat)-1], r.idleCPU, r.idle.Round(time.Millisecond), r.arms)
			if p50 > 500*time.Microsecond {
				t.Errorf("median wake-up %v: frames wait for something other than their own wake-up", p50)
			}
			if r.idle < 900*time.Millisecond || r.idleCPU > 10*time.Millisecond {
				t.Errorf("the last Recv was idle %v and used %v of its thread's CPU: it spins", r.idle, r.idleCPU)
			}
			switch {
			case hold && mode.threaded && r.arms < probes/2:
				t.Error("holding the previous batch never needed the edge-triggered wait: the test does not test it")
			case !mode.threaded && r.arms != 0:
				t.Errorf("the netpoller wait armed the edge-triggered epoll %d times: it waited on its own thread", r.arms)
			}
		})
	}
}

// A port's transmit queue on the uplink (RoleUplinkTX) is one descriptor,
// its socket: nothing ever waits on it, so it has no waiter. A receiving
// queue has its socket and a waiter (an epoll instance and an eventfd). They send, close (twice) and give every
// descriptor back.
func TestQueueDescriptors(t *testing.T) {
	n := newTestNet(t)
	fds := func() int {
		t.Helper()
		es, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(es)
	}
	rx := n.open(smallRing(), "vb", backend.QueueConfig{Role: backend.RolePort})
	ch, _ := collect(rx)
	before := fds()
	tx, err := n.tryOpen(smallRing(), "va", backend.QueueConfig{Role: backend.RoleUplinkTX})
	if err != nil {
		t.Fatal(err)
	}
	if got := fds() - before; got != 1 {
		t.Errorf("a transmit-only queue opened %d descriptors, want 1", got)
	}
	if sent, err := tx.Send([][]byte{ethFrame(1, nil, 0x88b5, 46)}); sent != 1 || err != nil {
		t.Fatalf("Send = %d, %v", sent, err)
	}
	expectFrames(t, ch, 1, 2*time.Second)
	if err := tx.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tx.Close(); err != nil {
		t.Fatal(err)
	}
	if got := fds(); got != before {
		t.Errorf("%d descriptors after closing the transmit-only queue, %d before opening it", got, before)
	}
	port, err := n.tryOpen(smallRing(), "va", backend.QueueConfig{Role: backend.RolePort})
	if err != nil {
		t.Fatal(err)
	}
	if got := fds() - before; got != 3 {
		t.Errorf("a port queue opened %d descriptors, want 3 (socket, the epoll instance the netpoller watches and the wake-up eventfd)", got)
	}
	if err := port.Close(); err != nil {
		t.Fatal(err)
	}
	if got := fds(); got != before {
		t.Errorf("%d descriptors after closing the port queue, %d before opening it", got, before)
	}
}
