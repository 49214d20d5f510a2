package datapath

import (
	"encoding/binary"
	"log/slog"
	"net"
	"testing"

	"github.com/vswitch/vswitch/pkg/backend"
	portcfg "github.com/vswitch/vswitch/pkg/port"
	"github.com/vswitch/vswitch/pkg/vlan"
)

// nullQueue accepts every frame and receives nothing: the benchmarks drive
// the pipelines directly with a pre-filled batch.
type nullQueue struct{ sent uint64 }

func (q *nullQueue) Recv(b *backend.Batch) (int, error) { return 0, backend.ErrClosed }
func (q *nullQueue) Release(b *backend.Batch)           {}
func (q *nullQueue) Send(frames [][]byte) (int, error) {
	q.sent += uint64(len(frames))
	return len(frames), nil
}
func (q *nullQueue) Stats() backend.QueueStats { return backend.QueueStats{} }
func (q *nullQueue) Close() error              { return nil }

type nullBackend struct{}

func (nullBackend) Name() string { return "null" }
func (nullBackend) Open(string, backend.QueueConfig) (backend.Queue, error) {
	return &nullQueue{}, nil
}

func benchFrame(dst, src net.HardwareAddr, tags ...vlan.Tag) []byte {
	b := append(append([]byte{}, dst...), src...)
	for _, t := range tags {
		b = binary.BigEndian.AppendUint16(b, t.TPID)
		b = binary.BigEndian.AppendUint16(b, t.TCI)
	}
	b = binary.BigEndian.AppendUint16(b, 0x0800)
	return append(b, make([]byte, 60-len(b))...)
}

// fill loads the batch with copies of f, each with headroom, and returns a
// function that restores them (the pipeline rewrites tags in place).
func fill(b *backend.Batch, f []byte) func() {
	for i := range b.Buf {
		b.Buf[i] = make([]byte, 64+len(f))
		copy(b.Buf[i][64:], f)
	}
	return func() {
		for i := range b.Buf {
			copy(b.Buf[i][64:64+vlan.HeaderLen+2*vlan.TagLen], f)
			b.Off[i], b.Len[i] = 64, len(f)
		}
		b.N = len(b.Buf)
	}
}

// benchSwitch has two access ports on VID 100, on S-channel svid (0: none).
func benchSwitch(b testing.TB, svid uint16) (*Switch, *port, *port) {
	sw, err := New(Config{Uplink: "up0", Backend: nullBackend{}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	for i, name := range []string{"vnet1", "vnet2"} {
		if err := sw.AddPort(portcfg.Config{Name: name, VLAN: 100, SVID: svid, MACs: []net.HardwareAddr{{0x52, 0x54, 0, 0, 0, byte(i + 1)}}}); err != nil {
			b.Fatal(err)
		}
	}
	p1, p2 := sw.ports["vnet1"], sw.ports["vnet2"]
	for _, p := range []*port{p1, p2} {
		p.io.Store(&portIO{tap: &nullQueue{}, up: &nullQueue{}, stop: make(chan struct{}), done: make(chan struct{})})
	}
	return sw, p1, p2
}

// BenchmarkVMToUplink: parse, checks, learn, push tag, batch send; per frame.
func BenchmarkVMToUplink(b *testing.B) { benchEgress(b, 0) }

// BenchmarkVMToUplinkSChannel: the same on S-channel 20 (learning domain
// lookup, second tag).
func BenchmarkVMToUplinkSChannel(b *testing.B) { benchEgress(b, 20) }

func benchEgress(b *testing.B, svid uint16) {
	sw, p1, _ := benchSwitch(b, svid)
	w := newEgressWorker(sw, p1, p1.io.Load())
	restore := fill(w.b, benchFrame(net.HardwareAddr{0x52, 0x54, 0, 0, 0, 2}, net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}))
	snap, v := sw.snap.Load(), p1.view.Load()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += backend.DefaultBatch {
		restore()
		w.process(snap, v)
	}
	if p1.io.Load().up.(*nullQueue).sent == 0 {
		b.Fatal("nothing reached the uplink")
	}
}

// BenchmarkVMToUplinkLearned: as BenchmarkVMToUplink from a port without
// registered MACs, whose source is learned (one FDB probe per frame, a
// refresh once a second).
func BenchmarkVMToUplinkLearned(b *testing.B) {
	sw := limitSwitch(b, FDBLimits{}, portcfg.Config{Name: "vnet1", VLAN: 100})
	p := sw.ports["vnet1"]
	w := newEgressWorker(sw, p, p.io.Load())
	restore := fill(w.b, benchFrame(net.HardwareAddr{0x52, 0x54, 0, 0, 0, 2}, net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}))
	snap, v := sw.snap.Load(), p.view.Load()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += backend.DefaultBatch {
		restore()
		w.process(snap, v)
	}
	if sw.fdb.SlotCount(p.slot) != 1 {
		b.Fatal("the source was not learned")
	}
}

// benchIngress runs the uplink -> VM pipeline over batches of dst<-src
// frames tagged VID 100 and returns the switch's ports.
func benchIngress(b *testing.B, dst net.HardwareAddr, src net.HardwareAddr, svid uint16) (p1, p2 *port) {
	sw, p1, p2 := benchSwitch(b, svid)
	w := newIngressWorker(sw, &nullQueue{})
	tags := []vlan.Tag{{TPID: vlan.TPIDCTag, TCI: 100}}
	if svid != 0 {
		tags = append([]vlan.Tag{{TPID: vlan.TPIDSTag, TCI: svid}}, tags...)
	}
	restore := fill(w.b, benchFrame(dst, src, tags...))
	snap := sw.snap.Load()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += backend.DefaultBatch {
		restore()
		w.process(snap)
	}
	return p1, p2
}

// BenchmarkUplinkToVM: parse, VID table, FDB lookup, pop tag, batch send.
func BenchmarkUplinkToVM(b *testing.B) {
	benchUnicastIngress(b, 0)
}

// BenchmarkUplinkToVMSChannel: the same for an S-tagged frame (two tags,
// learning domain lookup).
func BenchmarkUplinkToVMSChannel(b *testing.B) { benchUnicastIngress(b, 20) }

func benchUnicastIngress(b *testing.B, svid uint16) {
	_, p2 := benchIngress(b, net.HardwareAddr{0x52, 0x54, 0, 0, 0, 2}, net.HardwareAddr{0x52, 0x54, 0, 0, 0, 9}, svid)
	if p2.io.Load().tap.(*nullQueue).sent == 0 {
		b.Fatal("nothing reached vnet2")
	}
}

// BenchmarkUplinkBroadcast: flood to the VID with the reflection filter
// (the broadcast comes from vnet1's MAC: only vnet2 gets it).
func BenchmarkUplinkBroadcast(b *testing.B) {
	p1, p2 := benchIngress(b, net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}, 0)
	if p1.io.Load().tap.(*nullQueue).sent != 0 || p2.io.Load().tap.(*nullQueue).sent == 0 {
		b.Fatal("reflection filter: vnet1 must get nothing, vnet2 everything")
	}
}

// BenchmarkUplinkControl: an LLDP frame classified and handed to the
// control-plane hook (which here only looks at it).
func BenchmarkUplinkControl(b *testing.B) {
	sw, _, _ := benchSwitch(b, 0)
	var seen int
	sw.cfg.Control = func(f []byte) bool { seen += len(f); return true }
	w := newIngressWorker(sw, &nullQueue{})
	f := benchFrame(net.HardwareAddr{0x01, 0x80, 0xc2, 0, 0, 0}, net.HardwareAddr{0x52, 0x54, 0, 0, 0, 9})
	binary.BigEndian.PutUint16(f[12:], EtherTypeLLDP)
	restore := fill(w.b, f)
	snap := sw.snap.Load()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += backend.DefaultBatch {
		restore()
		w.process(snap)
	}
	if seen == 0 || sw.control.Load() == 0 {
		b.Fatal("nothing reached the control hook")
	}
}

// BenchmarkFDB: learn + lookup of a learned MAC.
func BenchmarkFDB(b *testing.B) {
	f := newFDB()
	mac := []byte{0x52, 0x54, 0, 0, 0, 1}
	k := MACKey(100, mac)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f.Learn(k, 3)
		if s, ok := f.Lookup(k); !ok || s != 3 {
			b.Fatal("lookup failed")
		}
	}
}
