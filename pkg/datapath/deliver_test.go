package datapath

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"

	"github.com/vswitch/vswitch/pkg/backend"
	portcfg "github.com/vswitch/vswitch/pkg/port"
	"github.com/vswitch/vswitch/pkg/vlan"
)

// recQ records what is sent to it: the frames' sequence numbers (two
// bytes after the untagged header) and the number of Send calls.
type recQ struct {
	mu     sync.Mutex
	seqs   []int
	frames [][]byte
	sends  int
}

func (q *recQ) Recv(*backend.Batch) (int, error) { return 0, backend.ErrClosed }
func (q *recQ) Release(*backend.Batch)           {}
func (q *recQ) Stats() backend.QueueStats        { return backend.QueueStats{} }
func (q *recQ) Close() error                     { return nil }
func (q *recQ) Send(frames [][]byte) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.sends++
	for _, f := range frames {
		q.seqs = append(q.seqs, int(binary.BigEndian.Uint16(f[vlan.HeaderLen:])))
		q.frames = append(q.frames, append([]byte(nil), f...))
	}
	return len(frames), nil
}

func recTaps(t *testing.T, mode Mode, n int) *Switch {
	return floodSwitchQ(t, mode, n, func() backend.Queue { return &recQ{} })
}

func taps(sw *Switch, name string) *recQ { return sw.ports[name].io.Load().tap.(*recQ) }

// seqFrame is an untagged frame dst <- src numbered seq (60 bytes).
func seqFrame(dst, src net.HardwareAddr, seq int, tags ...vlan.Tag) []byte {
	f := mkEth(dst, src, 60, tags...)
	binary.BigEndian.PutUint16(f[vlan.HeaderLen+len(tags)*vlan.TagLen:], uint16(seq))
	return f
}

func wantSeqs(t *testing.T, port string, got, want []int) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s got frames %v, want %v", port, got, want)
	}
}

// A batch from the uplink to ports in descending slot order, with
// broadcasts between: every port gets its frames in the order they came,
// in one Send. With 8 ports the sort takes one radix pass, with 300 two.
func TestFanoutKeepsOrderPerPort(t *testing.T) {
	for _, ports := range []int{8, 300} {
		t.Run(fmt.Sprintf("ports=%d", ports), func(t *testing.T) {
			sw := recTaps(t, ModeVEPA, ports)
			w := newIngressWorker(sw, &nullQueue{}, 0)
			want := map[string][]int{}
			var frames [][]byte
			for k := range sw.cfg.Batch {
				if k%5 == 4 {
					frames = append(frames, seqFrame(bc, mR, k, ct(100)))
					for i := 1; i <= ports; i++ {
						name := fmt.Sprintf("vnet%d", i)
						want[name] = append(want[name], k)
					}
					continue
				}
				i := ports - k*7%ports
				frames = append(frames, seqFrame(floodMAC(i), mR, k, ct(100)))
				name := fmt.Sprintf("vnet%d", i)
				want[name] = append(want[name], k)
			}
			rfill(w.b, frames...)
			w.process(sw.snap.Load())
			for i := 1; i <= ports; i++ {
				name := fmt.Sprintf("vnet%d", i)
				q := taps(sw, name)
				wantSeqs(t, name, q.seqs, want[name])
				if q.sends != 1 {
					t.Errorf("%s: %d Sends for one batch, want 1", name, q.sends)
				}
			}
		})
	}
}

// A VEB flood to more ports than the fanout's deliveries hold in one
// batch (64 broadcasts x 99 ports = 6336, 4096 deliveries): every port gets
// every frame in order, in two Sends, nothing is dropped, the fanout's
// memory stays as it was made, and the 99 ports share one copy of each
// frame.
func TestFanoutFloodBeyondDeliveries(t *testing.T) {
	const ports = 100
	sw := recTaps(t, ModeVEB, ports)
	p := sw.ports["vnet1"]
	w := newEgressWorker(sw, p, p.io.Load())
	var frames [][]byte
	var want []int
	for k := range sw.cfg.Batch {
		frames = append(frames, seqFrame(bc, floodMAC(1), k))
		want = append(want, k)
	}
	rfill(w.b, frames...)
	w.local = newFanout(sw.cfg.Batch)
	w.local.begin(sw.snap.Load())
	for i := range w.b.N { // as process, but looking at the arena before the flush
		if r, ok := w.frame(sw.snap.Load(), p.view.Load(), w.b, i); !ok {
			t.Fatalf("frame %d dropped: %v", i, r)
		}
	}
	if used, want := w.local.used, sw.cfg.Batch*60; used != want {
		t.Errorf("the arena holds %d bytes for 64 broadcasts of 60 bytes to 99 ports, want %d (one copy each)", used, want)
	}
	w.local.flush(sw.snap.Load())
	dels := fanoutDeliveries * sw.cfg.Batch
	if l := w.local; cap(l.dels) != dels || cap(l.touched) != dels || cap(l.frames) != 2*sw.cfg.Batch || cap(l.out) != sw.cfg.Batch {
		t.Errorf("the fanout grew: %d deliveries, %d touched, %d frames, %d out; made with %d, %d, %d, %d",
			cap(l.dels), cap(l.touched), cap(l.frames), cap(l.out), dels, dels, 2*sw.cfg.Batch, sw.cfg.Batch)
	}
	if q := taps(sw, "vnet1"); len(q.seqs) != 0 {
		t.Errorf("vnet1 got its own broadcasts back: %v", q.seqs)
	}
	for i := 2; i <= ports; i++ {
		name := fmt.Sprintf("vnet%d", i)
		q := taps(sw, name)
		wantSeqs(t, name, q.seqs, want)
		if q.sends != 2 {
			t.Errorf("%s: %d Sends, want 2 (%d deliveries, %d at once)", name, q.sends, sw.cfg.Batch*(ports-1), dels)
		}
		if d := sw.ports[name].ctr.DropCount(DropTxError); d != 0 {
			t.Errorf("%s: %d tx_error drops", name, d)
		}
	}
}

// More frames for one port in one flush than a batch (not made by the
// pipelines, which flush after every batch): sent in batch-sized Sends, in
// order, without growing the fanout; for a lone port with its frames in
// order, at once. Without begin (no snapshot to flush with) a full fanout
// refuses instead.
func TestFanoutSplitsLongRun(t *testing.T) {
	sw := recTaps(t, ModeVEPA, 2)
	ports := sw.snap.Load().slots[:2]
	var f *fanout
	in := func(k int, to ...*portView) bool {
		f.input(seqFrame(floodMAC(1), mR, k), 0, false)
		for _, v := range to {
			if !f.to(v, 100) {
				return false
			}
		}
		return true
	}
	f = newFanout(4)
	var refused bool
	for k := range 2*4 + 1 {
		if !in(k, ports[0]) {
			refused = true
		}
	}
	if !refused {
		t.Fatal("a fanout of 8 frames took 9 before begin")
	}
	for _, tc := range []struct {
		to    []*portView
		sends int
	}{
		// 7 frames (the 8th would leave no room for a second form),
		// then the last 3: 4 + 3 + 3 with two ports, 7 + 3 with one.
		{ports, 3},
		{ports[:1], 2},
	} {
		f = newFanout(4)
		f.begin(sw.snap.Load())
		var want []int
		for k := range 10 {
			if !in(k, tc.to...) {
				t.Fatalf("frame %d refused", k)
			}
			want = append(want, k)
		}
		f.flush(sw.snap.Load())
		for i, v := range tc.to {
			q := taps(sw, v.p.name)
			wantSeqs(t, v.p.name, q.seqs, want)
			if q.sends != tc.sends {
				t.Errorf("%d ports, port %d: %d Sends, want %d", len(tc.to), i, q.sends, tc.sends)
			}
			q.seqs, q.frames, q.sends = nil, nil, 0
		}
		if cap(f.out) != 4 || cap(f.frames) != 8 {
			t.Errorf("out of capacity %d (want 4), %d frames (want 8)", cap(f.out), cap(f.frames))
		}
	}
}

// withTag is f with a C-tag of tci after its addresses.
func withTag(f []byte, tci uint16) []byte {
	t := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(append([]byte(nil), f[:12]...), vlan.TPIDCTag), tci)
	return append(t, f[12:]...)
}

// A flood to access ports, a trunk's native VLAN and trunks that want
// the frame tagged: each gets the right form, the access and native ports
// sharing one untagged frame, the tagged ones one tagged copy, from the
// uplink (PCP kept) and from a VEB port (whose own frame then goes to the
// uplink tagged in place, after its local copies were made).
func TestFanoutSharesForms(t *testing.T) {
	s, err := New(Config{Uplink: "up0", Mode: ModeVEB, Backend: nullBackend{}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	tr, _ := vlan.ParseVIDSet("100,200")
	cfgs := []portcfg.Config{
		{Name: "a", VLAN: 100, MACs: []net.HardwareAddr{m1}}, {Name: "b", VLAN: 100},
		{Name: "t1", Trunk: tr}, {Name: "t2", Trunk: tr}, {Name: "n1", Trunk: tr, NativeVLAN: 100},
	}
	qs := map[string]*recQ{}
	for _, c := range cfgs {
		if err := s.AddPort(c); err != nil {
			t.Fatal(err)
		}
		qs[c.Name] = &recQ{}
		s.ports[c.Name].io.Store(&portIO{tap: qs[c.Name], up: newFakeQ(), stop: make(chan struct{}), done: make(chan struct{})})
	}
	check := func(from string, tci uint16, skip string) {
		t.Helper()
		plain, tagged := seqFrame(bc, m1, 7), withTag(seqFrame(bc, m1, 7), tci)
		for _, c := range cfgs {
			q := qs[c.Name]
			want := [][]byte{plain}
			switch {
			case c.Name == skip:
				want = nil
			case c.IsTrunk() && c.NativeVLAN != 100:
				want = [][]byte{tagged}
			}
			if fmt.Sprintf("%x", q.frames) != fmt.Sprintf("%x", want) {
				t.Errorf("from %s: %s got %x\nwant %x", from, c.Name, q.frames, want)
			}
			q.frames, q.seqs = nil, nil
		}
	}
	tci := vlan.MakeTCI(5, false, 100)
	iw := newIngressWorker(s, newFakeQ(), 0)
	iw.out.begin(s.snap.Load())
	rfill(iw.b, withTag(seqFrame(bc, m1, 7), tci))
	for i := range iw.b.N {
		iw.frame(s.snap.Load(), iw.b, i)
	}
	if got, want := iw.out.used, 60+vlan.TagLen; got != want || len(iw.out.frames) != 2 {
		t.Errorf("from the uplink: %d bytes of arena, %d frames; want %d (one tagged copy), 2 (the view and the copy)", got, len(iw.out.frames), want)
	}
	iw.out.flush(s.snap.Load())
	check("the uplink", tci, "a") // a owns m1: the reflection filter

	p := s.ports["a"]
	up := newFakeQ()
	w := newEgressWorker(s, p, &portIO{tap: newFakeQ(), up: up})
	rfill(w.b, seqFrame(bc, m1, 7))
	w.process(s.snap.Load(), p.view.Load())
	check("VEB port a", vlan.MakeTCI(0, false, 100), "a")
	if want := withTag(seqFrame(bc, m1, 7), 100); len(up.sent) != 1 || fmt.Sprintf("%x", up.sent[0]) != fmt.Sprintf("%x", want) {
		t.Errorf("from VEB port a: the uplink got %x, want %x", up.sent, want)
	}
}

// Local delivery allocates nothing per frame, early flushes included: a
// VEB port flooding 299 others and the uplink flooding 300 ports.
func TestLocalDeliveryAllocatesNothing(t *testing.T) {
	const ports = 300
	sw := floodSwitch(t, ModeVEB, ports)
	p := sw.ports["vnet1"]
	ew := newEgressWorker(sw, p, p.io.Load())
	re := fill(ew.b, benchFrame(net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, floodMAC(1)))
	iw := newIngressWorker(sw, &nullQueue{}, 0)
	ri := fill(iw.b, benchFrame(net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, net.HardwareAddr{0x52, 0x54, 0, 9, 9, 9}, ct(100)))
	snap, v := sw.snap.Load(), p.view.Load()
	runs := 0
	allocs := testing.AllocsPerRun(20, func() {
		re()
		ew.process(snap, v)
		ri()
		iw.process(snap)
		runs++
	})
	if allocs != 0 {
		t.Errorf("%v allocations per batch", allocs)
	}
	batch := uint64(sw.cfg.Batch)
	if got, want := tapSent(sw, "vnet1"), uint64(runs)*batch; got != want {
		t.Errorf("vnet1 got %d frames, want %d (the uplink's only)", got, want)
	}
	if got, want := tapSent(sw, fmt.Sprintf("vnet%d", ports)), uint64(runs)*2*batch; got != want {
		t.Errorf("vnet%d got %d frames, want %d", ports, got, want)
	}
}
