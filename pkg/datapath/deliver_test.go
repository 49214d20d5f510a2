package datapath

import (
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/vswitch/vswitch/pkg/backend"
	"github.com/vswitch/vswitch/pkg/vlan"
)

// recQ records what is sent to it: the frames' sequence numbers (two
// bytes after the untagged header) and the number of Send calls.
type recQ struct {
	mu    sync.Mutex
	seqs  []int
	sends int
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
			w := newIngressWorker(sw, &nullQueue{})
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

// A VEB flood to more ports than the fanout's entries hold in one batch
// (64 broadcasts x 39 ports = 2496 copies, 1024 entries): every port gets
// every frame in order, in a few Sends, nothing is dropped and the
// fanout's memory stays as it was made.
func TestFanoutFloodBeyondEntries(t *testing.T) {
	const ports = 40
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
	w.process(sw.snap.Load(), p.view.Load())
	entries := vebEntries * sw.cfg.Batch
	if l := w.local; cap(l.frames) != entries || cap(l.next) != entries || cap(l.touched) != entries || cap(l.out) != sw.cfg.Batch {
		t.Errorf("the fanout grew: %d frames, %d next, %d touched, %d out; made with %d, %d, %d, %d",
			cap(l.frames), cap(l.next), cap(l.touched), cap(l.out), entries, entries, entries, sw.cfg.Batch)
	}
	copies := sw.cfg.Batch * (ports - 1)
	maxSends := copies/entries + 1
	if q := taps(sw, "vnet1"); len(q.seqs) != 0 {
		t.Errorf("vnet1 got its own broadcasts back: %v", q.seqs)
	}
	for i := 2; i <= ports; i++ {
		name := fmt.Sprintf("vnet%d", i)
		q := taps(sw, name)
		wantSeqs(t, name, q.seqs, want)
		if q.sends < 2 || q.sends > maxSends {
			t.Errorf("%s: %d Sends, want 2 to %d (%d copies, %d entries)", name, q.sends, maxSends, copies, entries)
		}
		if d := sw.ports[name].ctr.DropCount(DropTxError); d != 0 {
			t.Errorf("%s: %d tx_error drops", name, d)
		}
	}
}

// More frames for one port in one flush than a batch (not made by the
// pipelines, which add a frame at most once per port): sent in batch-sized
// Sends, in order, without growing the fanout. Before begin a full fanout
// has no snapshot to flush with and refuses; after, it flushes first.
func TestFanoutSplitsLongRun(t *testing.T) {
	sw := recTaps(t, ModeVEPA, 1)
	f := newFanout(4, vebEntries)
	entries := vebEntries * 4
	var want []int
	for k := range entries {
		if !f.add(0, seqFrame(floodMAC(1), mR, k)) {
			t.Fatalf("frame %d refused before begin with entries free", k)
		}
		want = append(want, k)
	}
	if f.add(0, seqFrame(floodMAC(1), mR, entries)) {
		t.Fatal("with every entry taken and no snapshot to flush with, add took a frame")
	}
	f.begin(sw.snap.Load())
	for k := 100; k < 110; k++ {
		if !f.add(0, seqFrame(floodMAC(1), mR, k)) {
			t.Fatalf("frame %d refused", k)
		}
		want = append(want, k)
	}
	f.flush(sw.snap.Load())
	q := taps(sw, "vnet1")
	wantSeqs(t, "vnet1", q.seqs, want)
	if q.sends != entries/4+3 || cap(f.out) != 4 || cap(f.frames) != entries {
		t.Errorf("%d Sends (want %d), out of capacity %d (want 4), %d entries (want %d)", q.sends, entries/4+3, cap(f.out), cap(f.frames), entries)
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
	iw := newIngressWorker(sw, &nullQueue{})
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
