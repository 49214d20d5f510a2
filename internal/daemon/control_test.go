package daemon

import (
	"bytes"
	"context"
	"log/slog"
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

// controlFrame gives LLDP to the EVB station and ECP to the VDP station,
// untagged as a packet socket would have seen them; anything else is
// nobody's.
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
	d.evb.Store(evb)
	d.vdp.Store(vdp)

	bridge := [6]byte{0x02, 0xb7, 0x1d, 0x9e, 0, 1}
	e := vepa.EVB{Mode: vepa.ModeBridge, BridgeStatus: vepa.BridgeRRCAP | vepa.BridgeRRCTR, StationStatus: vepa.StationRRREQ, R: 3, RTE: 8, RWD: 20, RKA: 20}
	lldp, err := (&vepa.LLDPDU{ChassisSubtype: vepa.ChassisIDMAC, ChassisID: bridge[:], PortSubtype: vepa.PortIDIfName,
		PortID: []byte("p1"), TTL: 120, EVB: &e}).Frame(vepa.NearestCustomerBridge, bridge)
	if err != nil {
		t.Fatal(err)
	}
	// The same LLDPDU behind a C-tag: the station must get it untagged.
	tagged := append(append(append([]byte{}, lldp[:12]...), 0x81, 0x00, 0x00, 0x64), lldp[12:]...)
	d.controlFrame(bytes.Clone(tagged))
	if r := evb.Relay(); r.Received != 1 || r.Bad != 0 || r.State != vepa.RelayGranted {
		t.Fatalf("EVB station after a tagged LLDPDU: received %d bad %d state %s, want 1 0 granted", r.Received, r.Bad, r.State)
	}
	d.controlFrame(bytes.Clone(lldp))
	if r := evb.Relay(); r.Received != 2 {
		t.Fatalf("EVB station received %d LLDPDUs, want 2", r.Received)
	}

	ecp := vepa.ECPFrame(bridge, vepa.ECPRequest, vepa.ECPSubtypeVDP, 7, nil)
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
	if r, s := evb.Relay(), vdp.ECPStats(); r.Received != 2 || s.Received != 1 || s.Bad != 0 {
		t.Errorf("a non-LLDP/ECP frame reached a station: relay %+v ecp %+v", r, s)
	}

	// No stations (LLDP interval negative, or not started yet): dropped quietly.
	(&Daemon{log: log}).controlFrame(bytes.Clone(lldp))
}
