package daemon

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/datapath"
	"github.com/vswitch/vswitch/pkg/vepa"
)

// syncLog is a log sink safe for concurrent use.
type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// lines counts the lines holding every one of subs.
func (l *syncLog) lines(subs ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range strings.Split(l.b.String(), "\n") {
		ok := line != ""
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			n++
		}
	}
	return n
}

// A bridge (or anyone copying its chassis ID, port ID and MAC) that flips
// its answers with every frame, 1000 times in 2 s: reflective relay
// granted and refused, an S-channel granted and taken back. The datapath
// switches between VEPA and VEB, and the S-channel port is attached and
// detached, a bounded number of times (the stations' hold-down: five at
// once, then once a second), not once per frame; the log stays short; the
// bridge's last word (refused, granted) is what the switch ends with.
func TestFlappingBridgeIsHeldDown(t *testing.T) {
	var logs syncLog
	r := newRig(t)
	r.opts.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r.opts.LLDPInterval = time.Hour
	d := r.start(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	r.linksUp("up0", "vnet1", "vnet2")
	mac := net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}
	nop := func([]byte) error { return nil }
	evb, err := vepa.NewStation(vepa.StationConfig{MAC: mac, Send: nop, RequestRelay: true, Interval: time.Hour, Local: vepa.DefaultLocal,
		OnChange: d.relayChanged, OnTimers: d.timersChanged, Logger: d.log})
	if err != nil {
		t.Fatal(err)
	}
	cdcp, err := vepa.NewCDCPStation(vepa.CDCPConfig{MAC: mac, Send: nop, Interval: time.Hour, OnChange: d.cdcpChanged, Logger: d.log})
	if err != nil {
		t.Fatal(err)
	}
	d.evb.Store(evb)
	d.mu.Lock()
	d.cdcp.Store(cdcp)
	d.syncChannelsLocked()
	d.mu.Unlock()
	wg.Add(2)
	go func() { defer wg.Done(); evb.Run(ctx) }()
	go func() { defer wg.Done(); cdcp.Run(ctx) }()
	if _, err := d.AddPort(ctx, api.PortSpec{Name: "vnet1", VLAN: intp(100), SVID: intp(10)}); err != nil {
		t.Fatal(err)
	}

	bridge := [6]byte{2, 0, 0, 0, 0, 0x99}
	evbFrame := func(status uint8) []byte {
		f, err := (&vepa.LLDPDU{ChassisSubtype: vepa.ChassisIDMAC, ChassisID: bridge[:], PortSubtype: vepa.PortIDIfName, PortID: []byte("p1"), TTL: 120,
			EVB: &vepa.EVB{Mode: vepa.ModeBridge, BridgeStatus: status, R: 3, RTE: 8, RWD: 20, RKA: 20}}).Frame(vepa.NearestCustomerBridge, bridge)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	grantRelay, refuseRelay := evbFrame(vepa.BridgeRRCAP|vepa.BridgeRRCTR), evbFrame(0)
	grant10, deny10 := bridgeCDCP(t, vepa.SChannel{SCID: 2, SVID: 10}), bridgeCDCP(t)
	start := time.Now()
	for i := range 1000 {
		if i%2 == 0 {
			d.controlFrame(grantRelay)
			d.controlFrame(deny10)
		} else {
			d.controlFrame(refuseRelay)
			d.controlFrame(grant10)
		}
		if i%10 == 9 {
			time.Sleep(time.Until(start.Add(time.Duration(i+1) * 2 * time.Millisecond)))
		}
	}
	took := time.Since(start)
	// The last word: refused, S-VID 10 granted.
	deadline := time.Now().Add(3 * time.Second)
	for d.sw.Mode() != datapath.ModeVEB || portNamed(t, d, "vnet1").State != "up" {
		if time.Now().After(deadline) {
			t.Fatalf("3 s after the flips: mode %v, vnet1 %+v; want VEB (refused) and up (granted)", d.sw.Mode(), portNamed(t, d, "vnet1"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	modes := logs.lines("switching VM to VM traffic locally") + logs.lines("back to VEPA forwarding")
	attaches := logs.lines("port up: its S-channel") + logs.lines("port down: its S-channel")
	loud := logs.lines("level=INFO") + logs.lines("level=WARN") + logs.lines("level=ERROR")
	t.Logf("1000 flips of each in %v: %d mode switches, %d S-channel port attaches/detaches, %d log lines at info or above", took, modes, attaches, loud)
	bound := 5 + int(took/time.Second) + 2
	if modes > bound || attaches > bound {
		t.Errorf("%d mode switches and %d port attaches/detaches for 1000 flips in %v, want at most %d each", modes, attaches, took, bound)
	}
	if loud > 40 {
		t.Errorf("%d log lines at info or above for 1000 flips", loud)
	}
	if logs.lines("level=WARN", "changes faster than vswitchd follows") != 2 {
		t.Error("the flapping is not logged once per kind (relay, CDCP grants)")
	}

	// GET /v1/lldp and the metrics count what was held down.
	l, err := d.LLDP(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]api.HoldDown{}
	for _, h := range l.HoldDown {
		kinds[h.Kind] = h
	}
	if h := kinds["relay"]; h.Changes != 1000 || h.Changes-h.Suppressed > uint64(bound) || !h.Flapping {
		t.Errorf("hold_down relay %+v", h)
	}
	if h := kinds["cdcp"]; h.Changes < 1000 || h.Changes-h.Suppressed > uint64(bound) || !h.Flapping {
		t.Errorf("hold_down cdcp %+v", h)
	}
	if h, ok := kinds["timers"]; !ok || h.Changes != 1 || h.Suppressed != 0 {
		t.Errorf("hold_down timers %+v (the bridge's timers never changed after the first LLDPDU)", h)
	}
	m := scrapeEVB(t, d)
	for _, want := range []string{`vswitch_evb_bridge_changes_total{kind="relay"} 1000`, `vswitch_evb_bridge_flapping{kind="cdcp"} 1`,
		`vswitch_evb_bridge_changes_suppressed_total{kind="timers"} 0`} {
		if !strings.Contains(m, want+"\n") {
			t.Errorf("metrics lack %s:\n%s", want, m)
		}
	}
}

// scrapeEVB returns what the EVB collector exports now.
func scrapeEVB(t *testing.T, d *Daemon) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(evbCollector{d})
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}
