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
	vtopo "github.com/vswitch/vswitch/test/topo"
)

// twoCPUs returns two CPUs the test may run on, or skips.
func twoCPUs(tb testing.TB) [2]int {
	cs := vtopo.CPUs(tb)
	if len(cs) < 2 {
		tb.Skip("needs two CPUs")
	}
	return [2]int{cs[0], cs[1]}
}

// drain reads what a queue has now (TryRecv until empty), releases it
// and counts B's frames. A backlog makes the queue stream (rxwait's
// spread, and the program steers by MAC pair); drain ends the stream, as
// Recv does after rxwait.SpreadIdle without frames.
func drain(tb testing.TB, q *Queue) int {
	tb.Helper()
	n := drainStreaming(tb, q)
	q.x.recvMu.Lock()
	q.wait.Unspread() // tells the steering (SetOnUnspread)
	q.x.recvMu.Unlock()
	return n
}

// drainUntil drains q until want of B's frames came (or 2 s passed: a
// loaded machine may run the veth's receive late, in ksoftirqd), and
// returns how many did.
func drainUntil(tb testing.TB, q *Queue, want int) int {
	tb.Helper()
	n := 0
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if n += drain(tb, q); n >= want || time.Now().After(deadline) {
			return n
		}
	}
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
	vtopo.OnCPU(tb, cpu, func() {
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
			if got := drainUntil(t, qs[want], perRound); got != perRound {
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

	// A shared socket transmits through its pool's TX ring.
	sniffB := tp.packetSocket(t, tp.bIdx)
	if n, err := qs[1].Send([][]byte{frame(macB, macA, 1, 60)}); n != 1 || err != nil {
		t.Fatalf("Send on a shared socket: %d, %v", n, err)
	}
	fromA := func(f []byte) bool { return len(f) >= 14 && bytes.Equal(f[6:12], macA) }
	if got := readRaw(sniffB, 300*time.Millisecond, fromA); len(got) != 1 {
		t.Errorf("peer got %d frames sent on a shared socket, want 1", len(got))
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
	// Closing the streaming queue ends the MAC-pair mode (once the other,
	// which may have streamed the MAC pair's frames, is idle too).
	streamer, other := qs[cs[0]%2], qs[1-cs[0]%2]
	drain(t, other)
	streamer.Close()
	if mode := atomic.LoadUint32(p.slot(stateMode)); mode != 0 {
		t.Errorf("steering mode %d after the streaming queue closed, want 0", mode)
	}
	// Its CPU's frames now go to the socket left.
	sendFrom(t, fd, tp.bIdx, cs[0], 10, macB)
	if got := drainUntil(t, other, 10); got != 10 {
		t.Errorf("after class %d closed, %d of 10 frames of its CPU reached class %d", streamer.x.class, got, other.x.class)
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

// socketFor: on a one-queue veth CPU c goes to socket c % n, the one
// polled on CPU c; on an interface with q queues and n sockets each, the
// keys of uplink queue i = q*class + queue's CPU (i of q*n) go to class
// i / q (pkg/datapath polls uplink queue i on CPU i).
func TestSocketFor(t *testing.T) {
	for _, c := range []struct{ key, queues, n, want int }{
		{0, 1, 2, 0}, {1, 1, 2, 1}, {2, 1, 2, 0}, {3, 1, 2, 1},
		{5, 1, 1, 0},
		{0, 3, 2, 0}, {2, 3, 2, 0}, {3, 3, 2, 1}, {5, 3, 2, 1}, {6, 3, 2, 0},
		{4, 2, 2, 0}, {2, 2, 2, 1}, {7, 2, 2, 1},
	} {
		if got := socketFor(c.key, c.queues, c.n); got != c.want {
			t.Errorf("socketFor(%d, %d queues, %d sockets) = %d, want %d", c.key, c.queues, c.n, got, c.want)
		}
	}
}

// A shared socket's counters start from its own attach: the pool's fill
// ring misses (counted before it opened) are class 0's, never a shared
// socket's base (they would wrap around), and its overrun leaves them out.
func TestSharedSocketStats(t *testing.T) {
	tp := newTopo(t)
	be := New(testOptions(t))
	q0 := tp.open(t, be, tp.a, backend.QueueConfig{Role: backend.RoleUplinkRX, QueueID: 0, Polled: true})
	fd := tp.packetSocket(t, tp.bIdx)
	// More frames than the pool has chunks, none read: the fill ring runs dry.
	for i := 0; i < rxFrames+200; i++ {
		sendRaw(t, fd, tp.bIdx, frame(macA, macB, uint32(i), 60))
	}
	time.Sleep(20 * time.Millisecond)
	if st := q0.Stats(); st.RxDropped < 200 {
		t.Fatalf("class 0 counted %d overruns after %d frames into %d chunks, want at least 200", st.RxDropped, rxFrames+200, rxFrames)
	}
	q1 := tp.open(t, be, tp.a, backend.QueueConfig{Role: backend.RoleUplinkRX, QueueID: 1, Polled: true})
	if in := q1.Info(); in.Class != 1 || in.QueueID != 0 {
		t.Fatalf("Info of uplink queue 1 on a one-queue veth: NIC queue %d, class %d; want 0, 1", in.QueueID, in.Class)
	}
	st := q1.Stats()
	if st.RxDropped != 0 || st.RxOversize != 0 {
		t.Errorf("shared socket opened after the pool's misses: RxDropped %d, RxOversize %d; want 0", st.RxDropped, st.RxOversize)
	}
	for _, s := range q1.CustomStats(nil) {
		if s.Value != 0 {
			t.Errorf("shared socket opened after the pool's misses: %s = %d, want 0", s.Name, s.Value)
		}
	}
	drain(t, q0)
}

// Unspread tells the steering at once: a queue that streamed and then
// waits in the netpoller (no CPU poller) leaves the MAC-pair mode before
// it sleeps, not at its next frame.
func TestSteeringLeavesMACPairModeOnIdle(t *testing.T) {
	q, _, got := backlogRecv(t, backend.RoleUplinkRX, 3*rxwait.SpreadBatch)
	if n := <-got; n < rxwait.SpreadBatch {
		t.Fatalf("first Recv took %d frames of a %d-frame backlog", n, 3*rxwait.SpreadBatch)
	}
	p := q.prog
	deadline := time.Now().Add(time.Second)
	for atomic.LoadUint32(p.slot(stateMode)) != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if mode := atomic.LoadUint32(p.slot(stateMode)); mode != 0 {
		t.Errorf("steering mode %d with the queue idle in the netpoller, want 0", mode)
	}
	q.Close()
	for range got {
	}
}

// A batch a shared socket received may be released after both its queue
// and class 0's closed: the chunks go back to the pool, whose UMEM is
// unmapped with the last of them, not before.
func TestSharedReleaseAfterClose(t *testing.T) {
	cs := twoCPUs(t)
	tp := newTopo(t)
	be := New(testOptions(t))
	q0 := tp.open(t, be, tp.a, backend.QueueConfig{Role: backend.RoleUplinkRX, QueueID: 0, Polled: true})
	q1 := tp.open(t, be, tp.a, backend.QueueConfig{Role: backend.RoleUplinkRX, QueueID: 1, Polled: true})
	fd := tp.packetSocket(t, tp.bIdx)
	c := cs[0]
	if c%2 == 0 {
		c = cs[1]
	}
	if c%2 != 1 {
		t.Skip("needs an odd CPU")
	}
	sendFrom(t, fd, tp.bIdx, c, 3, macB)
	b := backend.NewBatch(backend.DefaultBatch)
	if n, err := q1.TryRecv(b); n != 3 || err != nil {
		t.Fatalf("class 1 TryRecv: %d, %v; want the 3 frames of CPU %d", n, err, c)
	}
	f := bytes.Clone(b.Frame(0))
	q1.Close()
	q0.Close()
	pool := q1.x.shared
	if pool.umem == nil {
		t.Fatal("UMEM unmapped while a batch still points into it")
	}
	if !bytes.Equal(b.Frame(0), f) {
		t.Error("a held frame changed after its queues closed")
	}
	q1.Release(b)
	if pool.umem != nil || pool.outstanding != 0 {
		t.Errorf("after the last release: UMEM mapped %v, %d chunks outstanding; want unmapped, 0", pool.umem != nil, pool.outstanding)
	}
	if len(be.socks) != 0 || len(be.progs) != 0 {
		t.Errorf("backend still holds %d sockets, %d programs", len(be.socks), len(be.progs))
	}
}

// A port's Recv naps once before it sleeps while frames stream (a
// backlog, then batches in quick succession), and never for frames that
// come far apart; an uplink queue never naps.
func TestRecvNapsWhileStreaming(t *testing.T) {
	for _, c := range []struct {
		role backend.Role
		naps int32
	}{{backend.RolePort, 1}, {backend.RoleUplinkRX, 0}} {
		t.Run(c.role.String(), func(t *testing.T) { testRecvNaps(t, c.role, c.naps) })
	}
}

func testRecvNaps(t *testing.T, role backend.Role, want int32) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("a queue streams (waits on its own thread) only with a P to spare")
	}
	q, send, got := backlogRecv(t, role, 3*backend.DefaultBatch)
	for n := 0; n < 3*backend.DefaultBatch; {
		n += <-got
	}
	// The backlog's batches came back to back: the next, empty, Recv naps
	// once (a port), then sleeps on the socket.
	time.Sleep(20 * time.Millisecond)
	send(1000)
	<-got
	// A receiver preempted for more than rxwait.BusyGap between the
	// backlog's batches did not see a stream: another backlog then.
	for try := 0; try < 2 && want > 0 && q.naps.Load() == 0; try++ {
		for i := 0; i < 3*backend.DefaultBatch; i++ {
			send(uint32(3000 + i))
		}
		for n := 0; n < 3*backend.DefaultBatch; {
			n += <-got
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := q.naps.Load(); n != want {
		t.Fatalf("%s: %d naps after a streamed backlog, want %d", role, n, want)
	}
	// Frames far apart (more than rxwait.BusyGap): no nap.
	for i := 0; i < 3; i++ {
		time.Sleep(5 * rxwait.BusyGap)
		send(uint32(2000 + i))
		<-got
	}
	if n := q.naps.Load(); n != want {
		t.Errorf("%s: %d naps after frames %v apart, want still %d", role, n, 5*rxwait.BusyGap, want)
	}
	q.Close()
	for range got {
	}
}

// backlogRecv opens a queue of role on A, sends it a backlog of n frames
// from B, and receives with Recv on a goroutine of its own, which reports
// each batch's size on got (closed when Recv fails: Close the queue to
// end it). send sends one more frame.
func backlogRecv(t *testing.T, role backend.Role, n int) (q *Queue, send func(seq uint32), got chan int) {
	tp := newTopo(t)
	q = tp.open(t, New(testOptions(t)), tp.a, backend.QueueConfig{Role: role})
	fd := tp.packetSocket(t, tp.bIdx)
	send = func(seq uint32) { sendRaw(t, fd, tp.bIdx, frame(macA, macB, seq, 60)) }
	for i := 0; i < n; i++ {
		send(uint32(i))
	}
	time.Sleep(20 * time.Millisecond)
	got = make(chan int, 16)
	go func() {
		b := backend.NewBatch(backend.DefaultBatch)
		for {
			n, err := q.Recv(b)
			if err != nil {
				close(got)
				return
			}
			q.Release(b)
			got <- n
		}
	}()
	return q, send, got
}
