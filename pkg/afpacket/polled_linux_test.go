//go:build linux

package afpacket

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/vswitch/vswitch/internal/rxwait"
	"github.com/vswitch/vswitch/pkg/backend"
	"github.com/vswitch/vswitch/test/topo"
	"golang.org/x/sys/unix"
)

// tryAll reads what a polled queue has now (TryRecv until empty) and
// returns the test frames' first payload bytes.
func tryAll(tb testing.TB, q *Queue) (tags []byte) {
	tb.Helper()
	b := backend.NewBatch(backend.DefaultBatch)
	for {
		n, err := q.TryRecv(b)
		if err != nil {
			tb.Fatalf("TryRecv: %v", err)
		}
		for i := 0; i < n; i++ {
			if f := b.Frame(i); isTestFrame(f) {
				tags = append(tags, f[len(f)-1])
			}
		}
		q.Release(b)
		if n == 0 {
			return tags
		}
	}
}

// TestPolledFanoutByCPU: a polled uplink's fanout group gives queue i the
// frames received on CPU i (a veth's receive runs on the sender's CPU)
// while no queue streams, and keeps a MAC pair's frames on one queue,
// whatever CPU sent them, while one does.
func TestPolledFanoutByCPU(t *testing.T) {
	cs := topo.CPUs(t)
	if len(cs) < 2 {
		t.Skip("needs two CPUs")
	}
	n := newTestNet(t)
	cfg := backend.QueueConfig{Role: backend.RoleUplinkRX, FanoutGroup: uint16(os.Getpid()), Promisc: true, Polled: true}
	be := smallRing()
	qs := []*Queue{n.open(be, "vb", cfg), n.open(be, "vb", cfg)}
	if qs[0].steer == nil {
		t.Fatal("polled uplink queue has no fanout program")
	}
	peer := n.raw("va", false)
	send := func(cpu int, mark byte, count int) {
		topo.OnCPU(t, cpu, func() {
			for i := 0; i < count; i++ {
				f := udpFrame(1, [4]byte{10, 1, 0, 1}, [4]byte{10, 2, 0, 1}, 1000, 53, 16)
				f[len(f)-1] = mark
				peer.send(t, f)
			}
		})
	}
	for _, c := range cs[:2] {
		send(c, byte(c), 3)
		time.Sleep(10 * time.Millisecond)
		for i, q := range qs {
			got := tryAll(t, q)
			want := 0
			if c%2 == i {
				want = 3
			}
			if len(got) != want {
				t.Errorf("sent 3 frames from CPU %d: queue %d (of 2) got %d, want %d", c, i, len(got), want)
			}
		}
	}

	// A backlog makes queue 0 stream (rxwait's spread): by MAC pair now.
	send(cs[0], 0, rxwait.SpreadBatch)
	time.Sleep(10 * time.Millisecond)
	if got := tryAll(t, qs[0]); len(got) != rxwait.SpreadBatch || !qs[0].Streaming() {
		t.Fatalf("backlog of %d frames: queue 0 got %d, streaming %v", rxwait.SpreadBatch, len(got), qs[0].Streaming())
	}
	for _, c := range cs[:2] {
		send(c, byte(c), 3)
	}
	time.Sleep(10 * time.Millisecond)
	a, b := tryAll(t, qs[0]), tryAll(t, qs[1])
	if len(a)+len(b) != 6 || len(a) != 0 && len(b) != 0 {
		t.Errorf("one MAC pair from two CPUs while streaming: split %d/%d, want 6 on one queue", len(a), len(b))
	}

	// The stream ends (Recv waits rxwait.SpreadIdle, then ErrIdle): by
	// CPU again.
	if _, err := qs[0].Recv(backend.NewBatch(backend.DefaultBatch)); !errors.Is(err, backend.ErrIdle) {
		t.Fatalf("Recv after the stream: %v, want ErrIdle", err)
	}
	for _, c := range cs[:2] {
		send(c, byte(c), 2)
		time.Sleep(10 * time.Millisecond)
		if got := tryAll(t, qs[c%2]); len(got) != 2 {
			t.Errorf("after the stream, 2 frames from CPU %d: queue %d got %d", c, c%2, len(got))
		}
	}

	// A member that closes while streaming stops counting.
	send(cs[1], 1, rxwait.SpreadBatch)
	time.Sleep(10 * time.Millisecond)
	if got := tryAll(t, qs[1]); len(got) != rxwait.SpreadBatch || !qs[1].Streaming() {
		t.Fatalf("backlog on queue 1: %d frames, streaming %v", len(got), qs[1].Streaming())
	}
	s := qs[1].steer
	qs[1].Close()
	left := s.Streaming()
	if left != 0 {
		t.Errorf("%d members count as streaming after the streaming one closed, want 0", left)
	}
}

// TestPolledIncomingCPU: a polled port queue knows which CPU received its
// last frame (the one that sent it, over a veth).
func TestPolledIncomingCPU(t *testing.T) {
	n := newTestNet(t)
	q := n.open(smallRing(), "vb", backend.QueueConfig{Role: backend.RolePort, Polled: true})
	if q.rxCPU == nil {
		t.Fatal("no receive-CPU filter on a polled port queue")
	}
	if got := q.IncomingCPU(); got != -1 {
		t.Errorf("IncomingCPU before any frame = %d, want -1", got)
	}
	peer := n.raw("va", false)
	for _, c := range topo.CPUs(t) {
		topo.OnCPU(t, c, func() { peer.send(t, ethFrame(c, nil, 0x88b5, 46)) })
		time.Sleep(5 * time.Millisecond)
		if got := tryAll(t, q); len(got) != 1 {
			t.Fatalf("CPU %d: received %d frames, want 1 (the filter must accept frames whole)", c, len(got))
		}
		if got := q.IncomingCPU(); got != c {
			t.Errorf("frame sent on CPU %d: IncomingCPU = %d", c, got)
		}
	}
}

// TestPolledRecv: a polled queue's Recv returns backend.ErrIdle instead of
// sleeping while frames come far apart, and after a backlog receives on
// its own thread until the stream ends; TryRecv never waits; a socket
// error reaches TryRecv.
func TestPolledRecv(t *testing.T) {
	n := newTestNet(t)
	q := n.open(smallRing(), "vb", backend.QueueConfig{Role: backend.RolePort, Polled: true})
	b := backend.NewBatch(backend.DefaultBatch)
	start := time.Now()
	if k, err := q.TryRecv(b); k != 0 || err != nil {
		t.Fatalf("TryRecv on an empty ring: %d, %v", k, err)
	}
	if _, err := q.Recv(b); !errors.Is(err, backend.ErrIdle) {
		t.Fatalf("Recv on an idle polled queue: %v, want ErrIdle", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("TryRecv and Recv took %v on an empty ring: they must not wait", d)
	}

	peer := n.raw("va", false)
	for i := 0; i < rxwait.SpreadBatch; i++ {
		peer.send(t, ethFrame(i, nil, 0x88b5, 46))
	}
	time.Sleep(10 * time.Millisecond)
	if got := tryAll(t, q); len(got) != rxwait.SpreadBatch {
		t.Fatalf("backlog: got %d frames, want %d", len(got), rxwait.SpreadBatch)
	}
	if !q.Streaming() {
		t.Fatal("a backlog did not make the queue stream")
	}
	// Streaming: Recv receives (no ErrIdle while frames come).
	peer.send(t, ethFrame(99, nil, 0x88b5, 46))
	time.Sleep(time.Millisecond)
	k, err := q.Recv(b)
	if err != nil || k != 1 {
		t.Fatalf("Recv while streaming: %d, %v; want the next frame", k, err)
	}
	q.Release(b)
	// Then nothing for rxwait.SpreadIdle: back to the poller.
	start = time.Now()
	if _, err := q.Recv(b); !errors.Is(err, backend.ErrIdle) {
		t.Fatalf("Recv after the stream: %v, want ErrIdle", err)
	}
	if d := time.Since(start); d < rxwait.SpreadIdle {
		t.Errorf("ErrIdle after %v, want a wait of rxwait.SpreadIdle (%v) first", d, rxwait.SpreadIdle)
	}
	if q.Streaming() {
		t.Error("still streaming after ErrIdle")
	}

	n.ip("link", "set", "vb", "down")
	var terr error
	for i := 0; i < 50 && terr == nil; i++ {
		_, terr = q.TryRecv(b)
		time.Sleep(time.Millisecond)
	}
	if !errors.Is(terr, unix.ENETDOWN) {
		t.Errorf("TryRecv after the link went down: %v, want ENETDOWN", terr)
	}
}
