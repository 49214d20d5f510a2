package datapath

import (
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vswitch/vswitch/pkg/backend"
	portcfg "github.com/vswitch/vswitch/pkg/port"
	"github.com/vswitch/vswitch/pkg/vlan"
)

// fakeQ: Recv blocks until closed; Send records count.
type fakeQ struct {
	mu     sync.Mutex
	sent   [][]byte
	closed chan struct{}
	once   sync.Once
}

func newFakeQ() *fakeQ                              { return &fakeQ{closed: make(chan struct{})} }
func (q *fakeQ) Recv(b *backend.Batch) (int, error) { <-q.closed; return 0, backend.ErrClosed }
func (q *fakeQ) Release(b *backend.Batch)           { b.Reset() }
func (q *fakeQ) Send(fr [][]byte) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, f := range fr {
		q.sent = append(q.sent, append([]byte(nil), f...))
	}
	return len(fr), nil
}
func (q *fakeQ) Stats() backend.QueueStats { return backend.QueueStats{} }
func (q *fakeQ) Close() error              { q.once.Do(func() { close(q.closed) }); return nil }

type fakeBE struct {
	mu sync.Mutex
	qs map[string][]*fakeQ
}

func (b *fakeBE) Name() string { return "fake" }
func (b *fakeBE) Open(n string, c backend.QueueConfig) (backend.Queue, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := newFakeQ()
	b.qs[n] = append(b.qs[n], q)
	return q, nil
}

func mkEth(dst, src net.HardwareAddr, size int, tags ...vlan.Tag) []byte {
	b := append(append([]byte{}, dst...), src...)
	for _, t := range tags {
		b = binary.BigEndian.AppendUint16(b, t.TPID)
		b = binary.BigEndian.AppendUint16(b, t.TCI)
	}
	b = binary.BigEndian.AppendUint16(b, 0x0800)
	if size > len(b) {
		b = append(b, make([]byte, size-len(b))...)
	}
	return b
}

func rfill(b *backend.Batch, frames ...[]byte) {
	for i, f := range frames {
		buf := make([]byte, backend.Headroom+len(f)+8)
		copy(buf[backend.Headroom:], f)
		b.Buf[i], b.Off[i], b.Len[i] = buf, backend.Headroom, len(f)
	}
	b.N = len(frames)
}

func newTestSwitch(t *testing.T, mode Mode) (*Switch, *fakeBE) {
	be := &fakeBE{qs: map[string][]*fakeQ{}}
	s, err := New(Config{Uplink: "up0", Mode: mode, Backend: be, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s, be
}

var (
	m1 = net.HardwareAddr{0x52, 0x54, 0, 0xaa, 0xbb, 1}
	m2 = net.HardwareAddr{0x52, 0x54, 0, 0xaa, 0xbb, 2}
	mR = net.HardwareAddr{0x52, 0x54, 0, 0, 0, 0x99}
	bc = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
)

func ct(vid uint16) vlan.Tag { return vlan.Tag{TPID: vlan.TPIDCTag, TCI: vid} }

// Regression (review): trunk tagged frames read the source MAC from the pre-pop view.
func TestRegressionTrunkTaggedSrc(t *testing.T) {
	s, _ := newTestSwitch(t, ModeVEPA)
	tr, _ := vlan.ParseVIDSet("20")
	if err := s.AddPort(portcfg.Config{Name: "t1", Trunk: tr}); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	p := s.ports["t1"]
	s.mu.Unlock()
	up := newFakeQ()
	w := newEgressWorker(s, p, &portIO{tap: newFakeQ(), up: up})
	rfill(w.b, mkEth(bc, m1, 60, ct(20)), mkEth(mR, m1, 60, ct(20)))
	w.process(s.snap.Load(), p.view.Load())
	t.Logf("uplink frames: %d, drops: %v", len(up.sent), p.ctr.Drops())
	for _, e := range s.FDBEntries(0) {
		t.Logf("FDB: vid %d mac %s port %s", e.VID, e.MAC, e.Port)
	}
	if len(up.sent) != 2 {
		t.Errorf("tagged broadcast from trunk dropped: uplink got %d of 2, drops %v", len(up.sent), p.ctr.Drops())
	}
}

// Regression (review): ingress indexes snap.slots with an FDB slot from a newer config.
func TestRegressionIngressStaleSnapshotPanic(t *testing.T) {
	s, _ := newTestSwitch(t, ModeVEPA)
	s.AddPort(portcfg.Config{Name: "a", VLAN: 100})
	old := s.snap.Load() // ingress worker loaded this at batch start
	s.AddPort(portcfg.Config{Name: "b", VLAN: 100})
	s.fdb.Learn(MACKey(100, m2), 1) // b's egress learns
	w := newIngressWorker(s, newFakeQ(), 0)
	rfill(w.b, mkEth(m2, mR, 60, ct(100)))
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("ingress panicked: %v", r)
		}
	}()
	w.process(old)
}

// Regression (review): broadcast for a (svid, vid) no port uses is dropped silently.
func TestRegressionSilentSChannelDrop(t *testing.T) {
	s, _ := newTestSwitch(t, ModeVEPA)
	s.AddPort(portcfg.Config{Name: "a", VLAN: 100})
	w := newIngressWorker(s, newFakeQ(), 0)
	rfill(w.b, mkEth(bc, mR, 60, vlan.Tag{TPID: vlan.TPIDSTag, TCI: 5}, ct(100)))
	w.process(s.snap.Load())
	var total uint64
	for _, v := range s.uplink.Drops() {
		total += v
	}
	for _, v := range s.ports["a"].ctr.Drops() {
		total += v
	}
	if total != 1 {
		t.Errorf("1 frame received, %d drops counted (uplink %v), 0 delivered", total, s.uplink.Drops())
	}
}

// Regression (review): the ager's keep func panics on an entry whose val is 0 (mid-insert / mid-delete).
func TestRegressionSweepSlotMinusOne(t *testing.T) {
	s, _ := newTestSwitch(t, ModeVEPA)
	tb := s.fdb.t.Load()
	k := MACKey(100, m1)
	tb.e[tb.seed.hash(k)&uint64(len(tb.e)-1)].key.Store(k) // CAS done, val not yet stored
	snap := s.snap.Load()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("Sweep with the ager's keep panicked: %v", r)
		}
	}()
	s.fdb.Sweep(s.cfg.Aging, func(slot int) bool { return slot < len(snap.slots) && snap.slots[slot] != nil })
}

// Regression (review): during a Sweep rebuild, lookups of live entries miss.
func TestRegressionRebuildLookupMiss(t *testing.T) {
	f := newFDB()
	live := MACKey(100, m1)
	f.Learn(live, 0)
	for i := 0; i < 30000; i++ {
		f.Learn(uint64(200+i%8)<<48|uint64(i+1)<<8, 1) // within the per-VLAN limit
	}
	// Forget(1) leaves 30000 tombstones; the table holds 4 x DefaultFDBMax
	// entries: with those already there it is rebuilt.
	f.t.Load().tombstones.Store(int64(len(f.t.Load().e) / 4))
	old := f.t.Load()
	var stop atomic.Bool
	var misses, looks atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
			looks.Add(1)
			if _, ok := f.Lookup(live); !ok {
				misses.Add(1)
			}
		}
	}()
	time.Sleep(5 * time.Millisecond)
	f.Forget(1)
	time.Sleep(5 * time.Millisecond)
	stop.Store(true)
	<-done
	t.Logf("lookups %d, misses of a live entry %d", looks.Load(), misses.Load())
	if f.t.Load() == old {
		t.Fatal("the table was not rebuilt")
	}
	if misses.Load() != 0 {
		t.Errorf("live entry missed %d times during rebuild", misses.Load())
	}
	if f.Len() != 1 || f.SlotCount(0) != 1 || f.SlotCount(1) != 0 || f.DomainCount(100) != 1 {
		t.Errorf("rebuilt table counts %d entries, slot 0: %d, slot 1: %d, domain 100: %d; want 1, 1, 0, 1", f.Len(), f.SlotCount(0), f.SlotCount(1), f.DomainCount(100))
	}
}

// Regression (review): VEB broadcast to many local ports overflows the arena.
func TestRegressionVEBArenaOverflow(t *testing.T) {
	s, _ := newTestSwitch(t, ModeVEB)
	for _, n := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		s.AddPort(portcfg.Config{Name: n, VLAN: 100})
	}
	// attach all so io != nil
	for _, n := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		if err := s.Attach(n); err != nil {
			t.Fatal(err)
		}
	}
	p := s.ports["a"]
	up := newFakeQ()
	w := newEgressWorker(s, p, &portIO{tap: newFakeQ(), up: up})
	frames := make([][]byte, 64)
	for i := range frames {
		frames[i] = mkEth(bc, m1, 1514)
	}
	rfill(w.b, frames...)
	w.process(s.snap.Load(), p.view.Load())
	var drops uint64
	for _, n := range []string{"b", "c", "d", "e", "f", "g"} {
		drops += s.ports[n].ctr.DropCount(DropTxError)
	}
	if drops != 0 {
		t.Errorf("64 broadcasts x 6 local ports: %d copies dropped as tx_error (arena %d bytes)", drops, len(w.local.arena))
	}
}

// Ingress: trunk ports each get their own arena copy.
func TestRegressionIngressTrunkArenaOverflow(t *testing.T) {
	s, _ := newTestSwitch(t, ModeVEPA)
	tr, _ := vlan.ParseVIDSet("100")
	names := []string{"a", "b", "c", "d", "e", "f"}
	for _, n := range names {
		s.AddPort(portcfg.Config{Name: n, Trunk: tr})
		s.Attach(n)
	}
	w := newIngressWorker(s, newFakeQ(), 0)
	frames := make([][]byte, 64)
	for i := range frames {
		frames[i] = mkEth(bc, mR, 1518, ct(100))
	}
	rfill(w.b, frames...)
	w.process(s.snap.Load())
	var drops uint64
	for _, n := range names {
		drops += s.ports[n].ctr.DropCount(DropTxError)
	}
	if drops != 0 {
		t.Errorf("64 broadcasts x 6 trunk ports: %d copies dropped as tx_error", drops)
	}
}

// errQ: first Recv returns a non-ErrClosed error (like afpacket's ENETDOWN on link down).
type errQ struct {
	*fakeQ
	n atomic.Int32
}

func (q *errQ) Recv(b *backend.Batch) (int, error) {
	if q.n.Add(1) == 1 {
		return 0, io.ErrUnexpectedEOF
	}
	return q.fakeQ.Recv(b)
}

type errBE struct{ fakeBE }

func (b *errBE) Open(n string, c backend.QueueConfig) (backend.Queue, error) {
	if c.Role == backend.RolePort {
		return &errQ{fakeQ: newFakeQ()}, nil
	}
	return b.fakeBE.Open(n, c)
}

func TestRegressionEgressWorkerDiesButAttached(t *testing.T) {
	be := &errBE{fakeBE{qs: map[string][]*fakeQ{}}}
	s, _ := New(Config{Uplink: "up0", Backend: be, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	s.Start()
	defer s.Stop()
	s.AddPort(portcfg.Config{Name: "a", VLAN: 100})
	s.Attach("a")
	time.Sleep(20 * time.Millisecond)
	io := s.ports["a"].io.Load()
	select {
	case <-io.done:
		t.Errorf("egress worker exited after one Recv error, yet Attached(a)=%v: the daemon never reattaches", s.Attached("a"))
	default:
	}
}
