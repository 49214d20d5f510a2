//go:build linux

package afxdp

import (
	"bytes"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vswitch/vswitch/internal/rxwait"
	"github.com/vswitch/vswitch/pkg/backend"
	"golang.org/x/sys/unix"
)

// onCPU runs fn on a thread pinned to cpu.
func onCPU(tb testing.TB, cpu int, fn func()) {
	tb.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // the thread exits with the goroutine: its affinity goes with it
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			done <- err
			return
		}
		fn()
		done <- nil
	}()
	if err := <-done; err != nil {
		tb.Fatalf("pin to CPU %d: %v", cpu, err)
	}
}

// twoCPUs returns two CPUs the test may run on, or skips.
func twoCPUs(tb testing.TB) [2]int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		tb.Fatal(err)
	}
	var out []int
	for c := 0; c < len(set)*64 && len(out) < 2; c++ {
		if set.IsSet(c) {
			out = append(out, c)
		}
	}
	if len(out) < 2 {
		tb.Skip("needs two CPUs")
	}
	return [2]int{out[0], out[1]}
}

// drain reads what a queue has now (TryRecv until empty), releases it
// and counts B's frames. A backlog makes the queue stream (rxwait's
// spread, and the program steers by MAC pair); drain ends the stream, as
// Recv does after rxwait.SpreadIdle without frames.
func drain(tb testing.TB, q *Queue) int {
	tb.Helper()
	n := drainStreaming(tb, q)
	q.x.recvMu.Lock()
	q.wait.Unspread()
	q.noteSpread()
	q.x.recvMu.Unlock()
	return n
}

// drainStreaming is drain without the stream's end.
func drainStreaming(tb testing.TB, q *Queue) int {
	tb.Helper()
	b := backend.NewBatch(backend.DefaultBatch)
	n := 0
	for {
		k, err := q.TryRecv(b)
		if err != nil {
			tb.Fatalf("TryRecv: %v", err)
		}
		if k == 0 {
			return n
		}
		for i := 0; i < k; i++ {
			if fromB(b.Frame(i)) {
				n++
			}
		}
		q.Release(b)
	}
}

// sendFrom sends n frames from B on a thread pinned to cpu: over a veth
// the XDP program on A runs on that CPU.
func sendFrom(tb testing.TB, fd, ifindex, cpu, n int, src []byte) {
	tb.Helper()
	onCPU(tb, cpu, func() {
		for i := 0; i < n; i++ {
			sendRaw(tb, fd, ifindex, frame(macA, src, uint32(i), 60))
		}
	})
	time.Sleep(20 * time.Millisecond)
}

// TestUplinkSocketPerCPU: uplink queue IDs beyond a veth's one RX queue
// get sockets sharing its UMEM, and the XDP program gives each the frames
// of its CPU; chunks circulate through the shared fill ring (more frames
// than the pool has chunks pass); while a queue streams the program
// steers by MAC pair, one pair to one socket; a closed socket's CPUs go to
// the one left; a shared socket transmits through its pool's.
func TestUplinkSocketPerCPU(t *testing.T) {
	cs := twoCPUs(t)
	tp := newTopo(t)
	var nq int
	inNS(t, tp.ns, func() { nq = RXQueues(tp.a) })
	if nq != 1 {
		t.Fatalf("RXQueues(veth) = %d, want 1", nq)
	}
	be := New(testOptions(t))
	var qs [2]*Queue
	for i := range qs {
		qs[i] = tp.open(t, be, tp.a, backend.QueueConfig{Role: backend.RoleUplinkRX, QueueID: i, Polled: true})
	}
	if qs[1].x.shared != qs[0].x || qs[1].x.class != 1 || qs[1].x.queueID != 0 {
		t.Fatalf("queue 1 on a one-queue veth: shared %v, class %d, NIC queue %d; want class 1 sharing queue 0's socket",
			qs[1].x.shared != nil, qs[1].x.class, qs[1].x.queueID)
	}
	fd := tp.packetSocket(t, tp.bIdx)

	// By CPU: CPU c's frames to class c % 2 (one NIC queue).
	const perRound = 700 // x 2 CPUs x 2 rounds: more than the pool's rxFrames chunks
	for round := 0; round < 2; round++ {
		for _, c := range cs {
			sendFrom(t, fd, tp.bIdx, c, perRound, macB)
			want := c % 2
			if got := drain(t, qs[want]); got != perRound {
				t.Errorf("round %d: %d of %d frames sent on CPU %d reached class %d", round, got, perRound, c, want)
			}
			if got := drain(t, qs[1-want]); got != 0 {
				t.Errorf("round %d: %d frames sent on CPU %d reached class %d", round, got, c, 1-want)
			}
			for _, q := range qs {
				if got := q.IncomingCPU(); got != c {
					t.Errorf("IncomingCPU after frames on CPU %d = %d", c, got)
				}
			}
		}
	}

	// A backlog makes class 0 stream: the program steers by MAC pair.
	sendFrom(t, fd, tp.bIdx, cs[0], 3*rxwait.SpreadBatch, macB)
	b := backend.NewBatch(backend.DefaultBatch)
	if _, err := qs[cs[0]%2].Recv(b); err != nil {
		t.Fatalf("Recv: %v", err)
	}
	qs[cs[0]%2].Release(b)
	if !qs[cs[0]%2].Streaming() {
		t.Fatalf("a %d-frame backlog did not make the queue stream", 3*rxwait.SpreadBatch)
	}
	p := qs[0].prog
	if mode := atomic.LoadUint32(p.slot(stateMode)); mode != 1 {
		t.Fatalf("steering mode %d while a queue streams, want 1 (MAC pair)", mode)
	}
	for _, c := range cs {
		sendFrom(t, fd, tp.bIdx, c, 50, macB)
	}
	got := [2]int{drainStreaming(t, qs[0]), drainStreaming(t, qs[1])}
	if got[0]+got[1] != 100 {
		t.Errorf("%v frames received, want 100", got)
	}
	if got[0] != 0 && got[1] != 0 {
		t.Errorf("one MAC pair sent from two CPUs split over both sockets while a queue streams: %v", got)
	}
	// Closing the streaming queue ends the MAC-pair mode.
	streamer, other := qs[cs[0]%2], qs[1-cs[0]%2]
	streamer.Close()
	if mode := atomic.LoadUint32(p.slot(stateMode)); mode != 0 {
		t.Errorf("steering mode %d after the streaming queue closed, want 0", mode)
	}
	// Its CPU's frames now go to the socket left.
	sendFrom(t, fd, tp.bIdx, cs[0], 10, macB)
	if got := drain(t, other); got != 10 {
		t.Errorf("after class %d closed, %d of 10 frames of its CPU reached class %d", streamer.x.class, got, other.x.class)
	}

	// A shared socket transmits through its pool's TX ring.
	if other.x.shared == nil {
		return // the class 0 queue is the one left
	}
	sniffB := tp.packetSocket(t, tp.bIdx)
	if n, err := other.Send([][]byte{frame(macB, macA, 1, 60)}); n != 1 || err != nil {
		t.Fatalf("Send on a shared socket: %d, %v", n, err)
	}
	fromA := func(f []byte) bool { return len(f) >= 14 && bytes.Equal(f[6:12], macA) }
	if got := readRaw(sniffB, 300*time.Millisecond, fromA); len(got) != 1 {
		t.Errorf("peer got %d frames sent on a shared socket, want 1", len(got))
	}
}

// TestPortIncomingCPU: a port queue knows which CPU received its last
// frame (over a veth, the one that sent it), from the XDP program's note.
func TestPortIncomingCPU(t *testing.T) {
	cs := twoCPUs(t)
	tp := newTopo(t)
	q := tp.open(t, New(testOptions(t)), tp.a, backend.QueueConfig{Role: backend.RolePort, Polled: true})
	if got := q.IncomingCPU(); got != -1 {
		t.Errorf("IncomingCPU before any frame = %d, want -1", got)
	}
	fd := tp.packetSocket(t, tp.bIdx)
	for _, c := range []int{cs[1], cs[0], cs[1]} {
		sendFrom(t, fd, tp.bIdx, c, 1, macB)
		if got := drain(t, q); got != 1 {
			t.Fatalf("CPU %d: received %d frames, want 1", c, got)
		}
		if got := q.IncomingCPU(); got != c {
			t.Errorf("frame sent on CPU %d: IncomingCPU = %d", c, got)
		}
	}
	q.Close()
	if got := q.IncomingCPU(); got != -1 {
		t.Errorf("IncomingCPU after Close = %d, want -1", got)
	}
}
