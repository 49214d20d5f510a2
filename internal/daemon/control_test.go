package daemon

import (
	"bytes"
	"context"
	"log/slog"
	"maps"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vswitch/vswitch/pkg/vepa"
)

// drain takes what is queued without a run goroutine.
func drain(q *controlQueue) [][]byte {
	var out [][]byte
	for {
		select {
		case c := <-q.full:
			out = append(out, append([]byte(nil), c.b[:c.n]...))
			q.free <- c
		default:
			return out
		}
	}
}

// The hand-off copies (the caller's buffer is reused at once), keeps the
// order, refuses instead of blocking when every buffer is taken and works
// again once the control goroutine caught up.
func TestControlQueueBounded(t *testing.T) {
	q := newControlQueue()
	f := make([]byte, 60)
	for i := 0; i < ctlBuffers; i++ {
		f[0] = byte(i)
		if !q.take(f) {
			t.Fatalf("take %d refused with buffers free", i)
		}
	}
	f[0] = 0xff
	done := make(chan bool)
	go func() { done <- q.take(f) }()
	select {
	case ok := <-done:
		if ok {
			t.Fatal("take succeeded with every buffer queued")
		}
	case <-time.After(time.Second):
		t.Fatal("take blocked with every buffer queued")
	}
	got := drain(q)
	if len(got) != ctlBuffers {
		t.Fatalf("drained %d frames, want %d", len(got), ctlBuffers)
	}
	for i, g := range got {
		if len(g) != 60 || g[0] != byte(i) {
			t.Fatalf("frame %d is %x: not a copy, or out of order", i, g[:4])
		}
	}
	if !q.take(f) {
		t.Fatal("take refused after the queue drained")
	}
	if q.take(make([]byte, ctlFrameMax+1)) {
		t.Error("a frame longer than the buffers was taken")
	}
}

// take is on the datapath's hot path: no allocation.
func TestControlQueueTakeAllocatesNothing(t *testing.T) {
	q := newControlQueue()
	f := make([]byte, 128)
	if n := testing.AllocsPerRun(1000, func() {
		if !q.take(f) {
			t.Fatal("take refused")
		}
		c := <-q.full
		q.free <- c
	}); n != 0 {
		t.Errorf("take allocates %v times per frame", n)
	}
}

// Several uplink workers take at once while run hands frames over; every
// frame is either handed over or refused, none lost or duplicated.
func TestControlQueueConcurrent(t *testing.T) {
	q := newControlQueue()
	ctx, cancel := context.WithCancel(context.Background())
	var handled atomic.Int64
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		q.run(ctx, func(f []byte) {
			if len(f) != 64 || f[1] != f[0]^0x5a {
				t.Errorf("handed a torn frame %x", f[:2])
			}
			handled.Add(1)
		})
	}()
	var taken atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := make([]byte, 64)
			for i := 0; i < 5000; i++ {
				f[0] = byte(i)
				f[1] = f[0] ^ 0x5a
				if q.take(f) {
					taken.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for handled.Load() != taken.Load() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-runDone
	if handled.Load() != taken.Load() || taken.Load() == 0 {
		t.Fatalf("taken %d, handled %d", taken.Load(), handled.Load())
	}
}

// tagFrame puts a tag (TPID, VID) behind the addresses of an untagged frame.
func tagFrame(f []byte, tpid, vid uint16) []byte {
	return append(append(append([]byte{}, f[:12]...), byte(tpid>>8), byte(tpid), byte(vid>>8), byte(vid)), f[12:]...)
}

// controlFrame gives LLDP to the EVB station and ECP to the VDP station,
// as they were on the wire: tagged ones (C-tag, S-tag, priority tag) are
// refused and counted, never followed, whatever is behind the tag; the
// untagged LLDPDU of the bridge is followed, its ECP acknowledged, and
// another sender's ECP refused. Anything else is nobody's.
func TestControlFrameDemux(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	stationMAC := net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}
	var sent [][]byte
	var mu sync.Mutex
	send := func(f []byte) error {
		mu.Lock()
		sent = append(sent, append([]byte(nil), f...))
		mu.Unlock()
		return nil
	}
	evb, err := vepa.NewStation(vepa.StationConfig{MAC: stationMAC, Send: send, RequestRelay: true, Local: vepa.DefaultLocal, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	vdp, err := vepa.NewVDPStation(vepa.VDPConfig{MAC: [6]byte(stationMAC), Send: send, ManagerID: vepa.ManagerID(vdpManager), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{log: log}
	if d.controlRejects() != nil {
		t.Error("rejects counted with the EVB station off")
	}
	d.evb.Store(evb)
	d.vdp.Store(vdp)

	bridge := [6]byte{0x02, 0xb7, 0x1d, 0x9e, 0, 1}
	e := vepa.EVB{Mode: vepa.ModeBridge, BridgeStatus: vepa.BridgeRRCAP | vepa.BridgeRRCTR, StationStatus: vepa.StationRRREQ, R: 3, RTE: 8, RWD: 20, RKA: 20}
	lldp, err := (&vepa.LLDPDU{ChassisSubtype: vepa.ChassisIDMAC, ChassisID: bridge[:], PortSubtype: vepa.PortIDIfName,
		PortID: []byte("p1"), TTL: 120, EVB: &e}).Frame(vepa.NearestCustomerBridge, bridge)
	if err != nil {
		t.Fatal(err)
	}
	// The LLDPDU behind a C-tag, an S-tag and a priority tag: refused.
	for _, tag := range []struct{ tpid, vid uint16 }{{0x8100, 100}, {0x88a8, 7}, {0x8100, 0}} {
		d.controlFrame(tagFrame(lldp, tag.tpid, tag.vid))
	}
	if r := evb.Relay(); r.Tagged != 3 || r.Received != 0 || r.State != vepa.RelayUnknown || r.Peer != "" {
		t.Fatalf("EVB station after tagged LLDPDUs: %+v, want 3 tagged, none received, unknown", r)
	}
	d.controlFrame(bytes.Clone(lldp))
	if r := evb.Relay(); r.Received != 1 || r.State != vepa.RelayGranted || r.PeerMAC.String() != net.HardwareAddr(bridge[:]).String() {
		t.Fatalf("EVB station after the untagged LLDPDU: %+v, want granted by %x", r, bridge)
	}
	vdp.SetBridge(evb.Relay().PeerMAC) // what relayChanged does

	ecp := vepa.ECPFrame(bridge, vepa.ECPRequest, vepa.ECPSubtypeVDP, 7, nil)
	d.controlFrame(tagFrame(ecp, 0x8100, 100))
	if s := vdp.ECPStats(); s.Tagged != 1 || s.Received != 0 {
		t.Fatalf("VDP station's ECP after a tagged request: %+v, want 1 tagged, none received", s)
	}
	other := [6]byte{0x02, 0xee, 0, 0, 0, 9}
	d.controlFrame(vepa.ECPFrame(other, vepa.ECPRequest, vepa.ECPSubtypeVDP, 8, nil))
	if s := vdp.ECPStats(); s.Foreign != 1 || s.Received != 0 {
		t.Fatalf("VDP station's ECP after another sender's request: %+v, want 1 foreign, none received", s)
	}
	mu.Lock()
	n := len(sent)
	mu.Unlock()
	if n != 0 {
		t.Fatalf("refused ECP frames were answered: %d frames sent", n)
	}
	d.controlFrame(ecp)
	if s := vdp.ECPStats(); s.Received != 1 {
		t.Fatalf("VDP station's ECP received %d, want 1 (stats %+v)", s.Received, s)
	}
	mu.Lock()
	acked := len(sent) == 1 && len(sent[0]) >= 14 && sent[0][12] == 0x89 && sent[0][13] == 0x40
	mu.Unlock()
	if !acked {
		t.Errorf("the ECP request was not acknowledged through Send (sent %x)", sent)
	}

	// Neither LLDP nor ECP: ignored (the datapath counted it).
	stp := append(append(append([]byte{}, vepa.NearestCustomerBridge[:]...), bridge[:]...), 0x00, 0x26)
	d.controlFrame(append(stp, make([]byte, 46)...))
	d.controlFrame([]byte{1, 2, 3}) // runt: ignored, no panic
	if r, s := evb.Relay(), vdp.ECPStats(); r.Received != 1 || s.Received != 1 || s.Bad != 0 {
		t.Errorf("a non-LLDP/ECP frame reached a station: relay %+v ecp %+v", r, s)
	}

	want := map[string]uint64{"lldp_tagged": 3, "lldp_foreign_peer": 0, "lldp_foreign_shutdown": 0, "ecp_tagged": 1, "ecp_foreign_peer": 1}
	got := map[string]uint64{}
	for _, r := range d.controlRejects() {
		got[r.key()] = r.n
	}
	if !maps.Equal(got, want) {
		t.Errorf("control rejects %v, want %v", got, want)
	}

	// No stations (LLDP interval negative, or not started yet): dropped quietly.
	(&Daemon{log: log}).controlFrame(bytes.Clone(lldp))
}
