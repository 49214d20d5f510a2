package datapath

import (
	"context"
	"encoding/binary"
	"fmt"
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

// runEgress times port p's VM -> uplink pipeline over batches of frame:
// b.N frames, a batch at a time, the batch restored before each.
func runEgress(b *testing.B, sw *Switch, p *port, frame []byte) {
	w := newEgressWorker(sw, p, p.io.Load())
	restore := fill(w.b, frame)
	snap, v := sw.snap.Load(), p.view.Load()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += backend.DefaultBatch {
		restore()
		w.process(snap, v)
	}
}

// runIngress times the uplink -> VM pipeline over batches of frame, as
// runEgress does.
func runIngress(b *testing.B, sw *Switch, frame []byte) {
	w := newIngressWorker(sw, &nullQueue{}, 0)
	restore := fill(w.b, frame)
	snap := sw.snap.Load()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += backend.DefaultBatch {
		restore()
		w.process(snap)
	}
}

// BenchmarkVMToUplink: parse, checks, learn, push tag, batch send; per frame.
func BenchmarkVMToUplink(b *testing.B) { benchEgress(b, 0) }

// BenchmarkVMToUplinkSChannel: the same on S-channel 20 (learning domain
// lookup, second tag).
func BenchmarkVMToUplinkSChannel(b *testing.B) { benchEgress(b, 20) }

func benchEgress(b *testing.B, svid uint16) {
	sw, p1, _ := benchSwitch(b, svid)
	runEgress(b, sw, p1, benchFrame(net.HardwareAddr{0x52, 0x54, 0, 0, 0, 2}, net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}))
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
	runEgress(b, sw, p, benchFrame(net.HardwareAddr{0x52, 0x54, 0, 0, 0, 2}, net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}))
	if sw.fdb.SlotCount(p.slot) != 1 {
		b.Fatal("the source was not learned")
	}
}

// benchIngress runs the uplink -> VM pipeline over batches of dst<-src
// frames tagged VID 100 and returns the switch's ports.
func benchIngress(b *testing.B, dst net.HardwareAddr, src net.HardwareAddr, svid uint16) (p1, p2 *port) {
	sw, p1, p2 := benchSwitch(b, svid)
	tags := []vlan.Tag{{TPID: vlan.TPIDCTag, TCI: 100}}
	if svid != 0 {
		tags = append([]vlan.Tag{{TPID: vlan.TPIDSTag, TCI: svid}}, tags...)
	}
	runIngress(b, sw, benchFrame(dst, src, tags...))
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
	f := benchFrame(net.HardwareAddr{0x01, 0x80, 0xc2, 0, 0, 0}, net.HardwareAddr{0x52, 0x54, 0, 0, 0, 9})
	binary.BigEndian.PutUint16(f[12:], EtherTypeLLDP)
	runIngress(b, sw, f)
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

// floodSwitch has n access ports on VID 100 in mode, vnetI with the
// registered MAC 52:54:00:f1:HI:LO of I, each with a null tap and uplink
// queue.
func floodSwitch(b testing.TB, mode Mode, n int) *Switch {
	return floodSwitchQ(b, mode, n, func() backend.Queue { return &nullQueue{} })
}

// floodSwitchQ is floodSwitch with the ports' taps from newTap.
func floodSwitchQ(b testing.TB, mode Mode, n int, newTap func() backend.Queue) *Switch {
	sw, err := New(Config{Uplink: "up0", Mode: mode, Backend: nullBackend{}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("vnet%d", i)
		if err := sw.AddPort(portcfg.Config{Name: name, VLAN: 100, MACs: []net.HardwareAddr{floodMAC(i)}}); err != nil {
			b.Fatal(err)
		}
		sw.ports[name].io.Store(&portIO{tap: newTap(), up: &nullQueue{}, stop: make(chan struct{}), done: make(chan struct{})})
	}
	return sw
}

func floodMAC(i int) net.HardwareAddr {
	return net.HardwareAddr{0x52, 0x54, 0, 0xf1, byte(i >> 8), byte(i)}
}

// tapSent is how many frames port name's tap was given.
func tapSent(sw *Switch, name string) uint64 { return sw.ports[name].io.Load().tap.(*nullQueue).sent }

// benchVEB runs vnet1's VM -> uplink pipeline in VEB mode over batches of
// frames to dst, on a switch of n ports; per frame from the VM.
func benchVEB(b *testing.B, n int, dst net.HardwareAddr) *Switch {
	sw := floodSwitch(b, ModeVEB, n)
	runEgress(b, sw, sw.ports["vnet1"], benchFrame(dst, floodMAC(1)))
	return sw
}

// BenchmarkVEBLocalUnicast: VEB mode, a frame to another local port's
// registered MAC: switched locally (an arena copy, one Send per batch).
func BenchmarkVEBLocalUnicast(b *testing.B) {
	sw := benchVEB(b, 2, floodMAC(2))
	if tapSent(sw, "vnet2") == 0 {
		b.Fatal("nothing reached vnet2")
	}
}

// BenchmarkVEBBroadcast: VEB mode, a broadcast from vnet1 copied to the
// other ports of the VLAN and sent to the uplink; per frame from the VM
// (ports-1 copies each).
func BenchmarkVEBBroadcast(b *testing.B) {
	for _, n := range []int{8, 64} {
		b.Run(fmt.Sprintf("ports=%d", n), func(b *testing.B) {
			sw := benchVEB(b, n, net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
			if tapSent(sw, "vnet1") != 0 || tapSent(sw, fmt.Sprintf("vnet%d", n)) == 0 {
				b.Fatal("vnet1 must get nothing, the others everything")
			}
		})
	}
}

// BenchmarkUplinkBroadcastPorts: a broadcast from the uplink to every
// port of the VLAN (views of the receive buffer, one Send per port per
// batch); per frame from the uplink.
func BenchmarkUplinkBroadcastPorts(b *testing.B) {
	for _, n := range []int{32, 256} {
		b.Run(fmt.Sprintf("ports=%d", n), func(b *testing.B) {
			sw := floodSwitch(b, ModeVEPA, n)
			runIngress(b, sw, benchFrame(net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, net.HardwareAddr{0x52, 0x54, 0, 9, 9, 9}, vlan.Tag{TPID: vlan.TPIDCTag, TCI: 100}))
			if tapSent(sw, "vnet1") == 0 || tapSent(sw, fmt.Sprintf("vnet%d", n)) == 0 {
				b.Fatal("a port of the VLAN got nothing")
			}
		})
	}
}

// benchCapture starts captures of both directions on names for the
// benchmark, each drained by a reader goroutine as vswitchd's API does,
// and returns a function that stops them and checks they recorded frames.
func benchCapture(b *testing.B, sw *Switch, names ...string) func() {
	var caps []*Capture
	done := make(chan struct{})
	for _, name := range names {
		c, err := sw.Capture(CaptureConfig{Interface: name})
		if err != nil {
			b.Fatal(err)
		}
		caps = append(caps, c)
		go func() {
			defer func() { done <- struct{}{} }()
			for c.Next(context.Background(), func(CapturedFrame) error { return nil }) == nil {
			}
		}()
	}
	return func() {
		b.StopTimer()
		for _, c := range caps {
			c.Close()
			<-done
			if st := c.Stats(); st.Captured == 0 {
				b.Fatalf("capture on %s recorded nothing: %+v", c.cfg.Interface, st)
			}
		}
	}
}

// BenchmarkVMToUplinkCapture is BenchmarkVMToUplink while the port (in)
// and the uplink (out) are captured: the copies into the buffers.
func BenchmarkVMToUplinkCapture(b *testing.B) {
	sw, p1, _ := benchSwitch(b, 0)
	stop := benchCapture(b, sw, "vnet1", "up0")
	runEgress(b, sw, p1, benchFrame(net.HardwareAddr{0x52, 0x54, 0, 0, 0, 2}, net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}))
	stop()
}

// BenchmarkUplinkToVMCapture is BenchmarkUplinkToVM while the uplink (in)
// and the port (out) are captured.
func BenchmarkUplinkToVMCapture(b *testing.B) {
	sw, _, p2 := benchSwitch(b, 0)
	stop := benchCapture(b, sw, "up0", "vnet2")
	runIngress(b, sw, benchFrame(net.HardwareAddr{0x52, 0x54, 0, 0, 0, 2}, net.HardwareAddr{0x52, 0x54, 0, 0, 0, 9}, vlan.Tag{TPID: vlan.TPIDCTag, TCI: 100}))
	stop()
	if p2.io.Load().tap.(*nullQueue).sent == 0 {
		b.Fatal("nothing reached vnet2")
	}
}
