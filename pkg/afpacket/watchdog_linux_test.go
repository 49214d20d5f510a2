//go:build linux

package afpacket

import (
	"testing"
	"time"

	"github.com/vswitch/vswitch/pkg/backend"
	"golang.org/x/sys/unix"
)

// A VM can send through its tap a GSO frame whose type the kernel cannot
// describe in the virtio_net_hdr of our PACKET_VNET_HDR socket (UFO).
// tpacket_rcv then drops it without releasing the slot it had claimed,
// and drops every later frame: without the watchdog the port stays deaf
// for good (seen on 6.18: all slots TP_STATUS_KERNEL, tp_drops rising,
// nothing received). The watchdog must notice, rebuild the ring, count
// it, and frames sent afterwards must arrive again.
func TestRecvRecoversFromRejectedGSO(t *testing.T) {
	n := newTestNet(t)
	tap := n.tap("tp0")
	q := n.open(smallRing(), "tp0", backend.QueueConfig{Role: backend.RolePort})
	ch, errc := collect(q)

	for i := range 3 {
		tapWrite(t, tap, vnetHdr{}, ethFrame(i, nil, 0x88b5, 46))
	}
	expectFrames(t, ch, 3, 2*time.Second)

	// 1000 bytes of UDP payload as UFO with 400-byte fragments.
	ufo := udpFrame(9, [4]byte{10, 9, 0, 1}, [4]byte{10, 9, 0, 2}, 9, 9, 1000)
	tapWrite(t, tap, vnetHdr{gsoType: vnetGSOUDP, gsoSize: 400, hdrLen: 14 + 20 + 8}, ufo)
	jammed := time.Now()

	// A VM keeps sending: one frame every 20 ms until one comes through.
	seq := 10
	var first rxFrame
	for got := false; !got; {
		if time.Since(jammed) > 5*time.Second {
			t.Fatalf("no frame received 5 s after the UFO frame: the port is jammed; stats %+v, custom %v", q.Stats(), customStats(q))
		}
		tapWrite(t, tap, vnetHdr{}, ethFrame(seq, nil, 0x88b5, 46))
		seq++
		select {
		case first = <-ch:
			got = true
		case err := <-errc:
			t.Fatalf("Recv: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	outage := time.Since(jammed)
	if s := int(first.data[11]); s < 10 {
		t.Fatalf("first frame after the UFO one is seq %d, want >= 10", s)
	}
	// The port is healthy again: every frame now arrives.
	for i := range 20 {
		tapWrite(t, tap, vnetHdr{}, ethFrame(100+i, nil, 0x88b5, 46))
	}
	for i, f := range expectFrames(t, ch, 20, 2*time.Second) {
		if int(f.data[11]) != 100+i {
			t.Fatalf("frame %d after recovery is seq %d, want %d", i, f.data[11], 100+i)
		}
	}
	cs := customStats(q)
	st := q.Stats()
	t.Logf("outage %v (%d frames sent meanwhile), %s %d, RxDropped %d", outage.Round(time.Millisecond), seq-10, StatRingResyncs, cs[StatRingResyncs], st.RxDropped)
	if cs[StatRingResyncs] == 0 {
		if outage > 200*time.Millisecond {
			t.Fatalf("frames were lost for %v, yet %s is 0", outage, StatRingResyncs)
		}
		t.Log("this kernel did not jam on the UFO frame: nothing to recover")
		return
	}
	if cs[StatRingResyncs] != 1 {
		t.Errorf("%s = %d after one jam, want 1", StatRingResyncs, cs[StatRingResyncs])
	}
	if st.RxDropped == 0 {
		t.Error("RxDropped is 0: the kernel's drops during the jam are not counted")
	}
	if outage > 3*time.Second {
		t.Errorf("the port was deaf for %v, want about one second (watchStrikes poll timeouts)", outage)
	}
}

// The watchdog on a ring built in memory: drops while the cursor slot
// stays free and nothing arrives; a frame written elsewhere is found and
// the cursor moves to it; with none anywhere it asks for a rebuild;
// frames flowing, an overloaded ring (cursor slot full) and a held cursor
// slot are never taken for a jam.
func TestWatchdog(t *testing.T) {
	r, q := fakeRing(2, 4, plainSlot, false)
	b := backend.NewBatch(8)
	frame := func(i int) fakePkt { return fakePkt{frame: ethFrame(i, nil, 0x88b5, 46)} }
	drain := func(want int) {
		t.Helper()
		n, _, _ := r.fill(b)
		if n != want {
			t.Fatalf("fill: %d frames, want %d", n, want)
		}
		r.release(b)
		b.Reset()
	}
	expect := func(drops uint64, want watchAction) {
		t.Helper()
		if got := r.watch(drops); got != want {
			t.Fatalf("watch(%d) = %d, want %d (strikes %d, cursor %d)", drops, got, want, r.wd.strikes, r.cur)
		}
	}

	writeSlots(r, q, 0, []fakePkt{frame(0), frame(1)})
	drain(2)
	expect(0, watchNothing) // first look
	expect(0, watchNothing) // idle, no drops: an idle port
	expect(0, watchNothing)

	// The kernel writes slots 4 and 5 while slot 2 stays free, and drops.
	writeSlots(r, q, 4, []fakePkt{frame(4), frame(5)})
	expect(3, watchNothing)  // strike 1
	expect(3, watchNothing)  // no new drops: no strike, none lost either
	expect(7, watchResynced) // strike 2: the cursor jumps
	if r.cur != 4 || r.resyncs.Load() != 1 {
		t.Fatalf("after the resync: cursor %d, resyncs %d; want 4, 1", r.cur, r.resyncs.Load())
	}
	n, _, _ := r.fill(b)
	if n != 2 || b.Frame(0)[11] != 4 || b.Frame(1)[11] != 5 {
		t.Fatalf("fill after the resync: %d frames", n)
	}
	// Held under the cursor? No: slots 4, 5 are held, the cursor is at 6.
	r.release(b)
	b.Reset()

	// Progress resets the count: a frame read between checks.
	expect(8, watchNothing)
	expect(9, watchNothing) // strike 1
	writeSlots(r, q, 6, []fakePkt{frame(6)})
	drain(1)
	expect(10, watchNothing) // taken moved: strikes back to 0
	expect(11, watchNothing) // strike 1

	// Stuck with no frame anywhere: rebuild, asked again until done.
	expect(12, watchRebuild)
	expect(13, watchRebuild)
	if r.resyncs.Load() != 1 {
		t.Fatalf("resyncs %d: a rebuild request is counted by whoever rebuilds", r.resyncs.Load())
	}

	// An overloaded ring: every slot holds an unread frame, drops rise.
	r2, q2 := fakeRing(1, 4, plainSlot, false)
	writeSlots(r2, q2, 0, []fakePkt{frame(0), frame(1), frame(2), frame(3)})
	for d := range uint64(6) {
		if a := r2.watch(d * 100); a != watchNothing {
			t.Fatalf("full ring: watch = %d", a)
		}
	}
	// Held under the cursor (a caller keeps batches; ErrRingHeld).
	n, _, _ = r2.fill(b)
	if n != 4 || !r2.wrapped() {
		t.Fatalf("fill: %d frames, wrapped %v", n, r2.wrapped())
	}
	for d := range uint64(6) {
		if a := r2.watch(1000 + d*100); a != watchNothing {
			t.Fatalf("held cursor slot: watch = %d", a)
		}
	}
	r2.release(b)
	b.Reset()

	// None of it allocates (it runs on the receive path).
	if a := testing.AllocsPerRun(100, func() { _ = r2.watch(5000) }); a != 0 {
		t.Fatalf("watch allocates %.0f times", a)
	}
}

// The receive queue resync on a real socket: a port queue on a tap gets
// TSO super-frames from the "VM" (TP_STATUS_COPY slots); the test steals
// one skb from the receive queue, so the next slot would read the wrong
// one. The queue must notice, fence the socket (unbind, rebind), drop the
// two super-frames in flight, and then receive every later frame whole:
// super-frames segmented, plain frames unchanged.
func TestRecvCopyResyncOnSocket(t *testing.T) {
	n := newTestNet(t)
	tap := n.tap("tp1")
	q := n.open(&Backend{}, "tp1", backend.QueueConfig{Role: backend.RolePort})
	r := q.rx
	tso := func(seed byte, payload int) ([]byte, vnetHdr) {
		c := gsoCase{csumCase: csumCase{proto: ipProtoTCP, payload: payload}, mss: 1448, flags: 0x18}
		f, _, l4 := buildSuper(c, seed)
		return f, vnetHdr{flags: 1 /* NEEDS_CSUM */, gsoType: vnetGSOTCPv4, hdrLen: uint16(l4 + 20),
			gsoSize: uint16(c.mss), csumStart: uint16(l4), csumOffset: 16}
	}
	waitSlot := func(slot int) uint32 {
		t.Helper()
		deadline := time.Now().Add(2 * time.Second)
		for r.slotStatus(slot)&unix.TP_STATUS_USER == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("slot %d not written after 2 s", slot)
			}
			time.Sleep(time.Millisecond)
		}
		return r.slotStatus(slot)
	}

	s1, h1 := tso(1, 5000)
	tapWrite(t, tap, h1, s1)
	if st := waitSlot(0); st&unix.TP_STATUS_COPY == 0 {
		t.Fatalf("slot 0 status %#x: a 5 KB super-frame should come as TP_STATUS_COPY", st)
	}
	// Steal slot 0's skb, as a read that went wrong would.
	buf, oob := make([]byte, copyBufSize), make([]byte, 64)
	if k, _, _, err := r.recvCopy(buf, oob); err != nil || k != vnetHdrLen+len(s1) {
		t.Fatalf("stealing the skb: %d bytes, %v; want %d", k, err, vnetHdrLen+len(s1))
	}
	s2, h2 := tso(2, 3000)
	tapWrite(t, tap, h2, s2)
	tapWrite(t, tap, vnetHdr{}, ethFrame(100, nil, 0x88b5, 46))
	waitSlot(2)

	ch, _ := collect(q)
	if got := expectFrames(t, ch, 1, 2*time.Second); got[0].data[11] != 100 {
		t.Fatalf("first frame seq %d, want the plain frame 100 (both super-frames dropped)", got[0].data[11])
	}
	expectNone(t, ch, 100*time.Millisecond, "after the resync")
	cs := customStats(q)
	if cs[StatCopyResyncs] != 1 || cs[StatGSODropped] != 2 || cs[StatGSOFrames] != 0 {
		t.Fatalf("custom stats %v: want %s 1, %s 2, %s 0", cs, StatCopyResyncs, StatGSODropped, StatGSOFrames)
	}

	// In step again: a super-frame comes out as its segments, then a
	// plain frame (the socket was bound again).
	s3, h3 := tso(3, 4000)
	tapWrite(t, tap, h3, s3)
	tapWrite(t, tap, vnetHdr{}, ethFrame(101, nil, 0x88b5, 46))
	segs := (4000 + 1447) / 1448
	got := expectFrames(t, ch, segs+1, 2*time.Second)
	for i, f := range got[:segs] {
		if len(f.data) > 14+20+20+1448 || f.data[11] != 1 {
			t.Fatalf("segment %d: %d bytes, seq byte %d", i, len(f.data), f.data[11])
		}
	}
	if got[segs].data[11] != 101 {
		t.Fatalf("frame after the segments: seq %d, want 101", got[segs].data[11])
	}
	if cs := customStats(q); cs[StatCopyResyncs] != 1 || cs[StatGSOFrames] != 1 {
		t.Fatalf("custom stats %v: want %s 1, %s 1", cs, StatCopyResyncs, StatGSOFrames)
	}
}
