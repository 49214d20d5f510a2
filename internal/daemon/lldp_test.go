package daemon

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/vepa"
)

// The bridge's LLDPDU, received through controlFrame, shows in GET
// /v1/lldp field by field; the timers it negotiates reach the VDP station
// (timersChanged) and the metrics.
func TestLLDPView(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	stationMAC := net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}
	var mu sync.Mutex
	var sent int
	send := func([]byte) error { mu.Lock(); sent++; mu.Unlock(); return nil }
	local := vepa.EVB{R: 3, RTE: 8, RWD: 20, RKA: 14, ROLRWD: true}
	d := &Daemon{log: log, opts: Options{Uplink: "up0", LLDPInterval: 5 * time.Second, EVBLocal: &local}}
	if l, err := d.LLDP(context.Background()); err != nil || l.Station || l.Uplink != "up0" || l.Peer != nil || l.Timers != nil {
		t.Fatalf("LLDP with the station off: %+v, %v", l, err)
	}
	vdp := lldpStations(t, d, stationMAC, send)
	d.timersChanged(vepa.NegotiatedTimers{}) // as runVDP sets them at its start
	if tm := vdp.Timers(); tm != (vepa.Timers{R: 3, RTE: 8, RWD: 20, RKA: 14}) {
		t.Fatalf("VDP timers before any bridge %+v, want the local ones (RWD followed: the default)", tm)
	}

	bridge := [6]byte{0x02, 0xb7, 0x1d, 0x9e, 0, 1}
	e := vepa.EVB{Mode: vepa.ModeBridge, BridgeStatus: vepa.BridgeRRCAP | vepa.BridgeRRCTR, StationStatus: vepa.StationRRREQ | vepa.RRStatYes,
		R: 4, RTE: 9, RWD: 18, ROLRWD: false, RKA: 17}
	f, err := (&vepa.LLDPDU{ChassisSubtype: vepa.ChassisIDMAC, ChassisID: bridge[:], PortSubtype: vepa.PortIDIfName, PortID: []byte("GE1/0/7"),
		TTL: 120, EVB: &e, Other: []vepa.TLV{{Type: 5, Value: []byte("leaf\x07one")}}}).Frame(vepa.NearestCustomerBridge, bridge)
	if err != nil {
		t.Fatal(err)
	}
	d.controlFrame(f)

	l, err := d.LLDP(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	p := l.Peer
	if !l.Station || p == nil || p.MAC != "02:b7:1d:9e:00:01" || p.ChassisID != "02:b7:1d:9e:00:01" || p.ChassisIDSubtype != "MAC address" ||
		p.PortID != "GE1/0/7" || p.PortIDSubtype != "interface name" || p.SystemName != `leaf\aone` || p.TTL != 120 || p.TTLLeft < 119 || p.TTLLeft > 120 {
		t.Fatalf("peer %+v", p)
	}
	if x := p.EVB; x == nil || x.Raw != "0305895211" || strings.Join(x.BridgeStatus, ",") != "rrcap,rrctr" || strings.Join(x.StationStatus, ",") != "rrreq" ||
		x.RRStat != "yes" || x.Mode != "bridge" || x.R != 4 || x.RTE != 9 || x.RWD != 18 || x.RKA != 17 || x.ROLRWD || x.ROLRKA {
		t.Errorf("bridge's TLV %+v", x)
	}
	if last, err := time.Parse(time.RFC3339, p.LastSeen); err != nil || time.Since(last) > 5*time.Second {
		t.Errorf("last seen %q (%v)", p.LastSeen, err)
	}
	// Ours: R 3, RTE 8, RWD followed (0 with ROL), RKA 14; RRSTAT yes now.
	if x := l.Local; x == nil || x.ChassisID != "52:54:00:00:00:01" || x.IntervalSeconds != 5 || x.TTL != 21 || !x.FollowRWD || x.FollowRKA ||
		x.EVB.Mode != "station" || x.EVB.R != 3 || x.EVB.RTE != 8 || x.EVB.RWD != 0 || !x.EVB.ROLRWD || x.EVB.RKA != 14 || x.EVB.RRStat != "yes" ||
		strings.Join(x.EVB.StationStatus, ",") != "rrreq" || len(x.EVB.BridgeStatus) != 0 {
		t.Errorf("local %+v", x)
	}
	// In use: the larger R, RTE and RKA (the bridge's), RWD the bridge's (followed).
	tm := l.Timers
	if tm == nil || tm.R != 4 || tm.RTE != 9 || tm.RWD != 18 || tm.RKA != 17 || tm.RFrom != "bridge" || tm.RWDFrom != "bridge" || tm.RKAFrom != "bridge" ||
		tm.ECPAckTimeoutUS != 5120 || tm.KeepAliveUS != 1310720 || tm.ResourceWaitUS != 2621440 || tm.ResponseWaitUS != 4001280 {
		t.Errorf("timers %+v", tm)
	}
	if got := vdp.Timers(); got != (vepa.Timers{R: 4, RTE: 9, RWD: 18, RKA: 17}) {
		t.Errorf("the VDP station uses %+v, want the negotiated timers", got)
	}
	if l.LLDP.Received != 1 || l.Relay.State != vepa.RelayGranted || len(l.VDP.VSIs) != len(vepa.VSIStates) || l.ECP.Sent != 0 {
		t.Errorf("counters %+v %+v %+v %+v", l.LLDP, l.Relay, l.VDP, l.ECP)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(evbCollector{d})
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`vswitch_reflective_relay_state{uplink="up0"} 1`,
		`vswitch_ecp_retransmissions_total{uplink="up0"} 0`, `vswitch_ecp_timeouts_total{uplink="up0"} 0`,
		`vswitch_vdp_requests_total{kind="keepalive"} 0`, `vswitch_vdp_answers_total{result="timeout"} 0`, `vswitch_vdp_answers_total{result="unsolicited"} 0`,
		`vswitch_evb_timer_seconds{timer="keepalive"} 1.31072`, `vswitch_evb_timer_seconds{timer="ecp_ack"} 0.00512`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "vswitch_vsis") {
		t.Errorf("the EVB collector exports VSIs per state, which vswitch_vsis (collector) does:\n%s", body)
	}

	// The bridge says goodbye: no peer, the local timers back in use.
	bye, _ := (&vepa.LLDPDU{ChassisSubtype: vepa.ChassisIDMAC, ChassisID: bridge[:], PortSubtype: vepa.PortIDIfName, PortID: []byte("GE1/0/7")}).Frame(vepa.NearestCustomerBridge, bridge)
	d.controlFrame(bye)
	if l, _ := d.LLDP(context.Background()); l.Peer != nil || l.Timers.RKA != 14 || l.Timers.RKAFrom != "local" || l.Relay.State != vepa.RelayUnknown {
		t.Errorf("after the bridge's shutdown: peer %+v timers %+v relay %+v", l.Peer, l.Timers, l.Relay)
	}
	if got := vdp.Timers(); got.RKA != 14 {
		t.Errorf("the VDP station kept RKA %d after the bridge left", got.RKA)
	}
	rec = httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !bytes.Contains(rec.Body.Bytes(), []byte(`vswitch_reflective_relay_state{uplink="up0"} 0`+"\n")) {
		t.Errorf("relay state after the shutdown:\n%s", rec.Body.String())
	}
}

// LLDPDUs to another agent's address are counted where GET /v1/lldp
// shows them: to the nearest bridge (01:80:c2:00:00:0e) always, and to the
// nearest non-TPMR bridge (01:80:c2:00:00:03, CDCP's) with --cdcp off, as
// the EVB station's received and ignored; with a CDCP agent, those to
// 01:80:c2:00:00:03 are its own (cdcp.received), not the station's.
func TestLLDPCountsOtherAgentsLLDPDUs(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	mac := net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}
	d := &Daemon{log: log, opts: Options{Uplink: "up0", LLDPInterval: 5 * time.Second, CDCP: CDCPOff}}
	evb, err := vepa.NewStation(vepa.StationConfig{MAC: mac, Send: func([]byte) error { return nil }, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	d.evb.Store(evb)
	bridge := [6]byte{2, 0, 0, 0, 0, 0x99}
	to := func(dst [6]byte) []byte {
		f, err := (&vepa.LLDPDU{ChassisSubtype: vepa.ChassisIDMAC, ChassisID: bridge[:], PortSubtype: vepa.PortIDIfName, PortID: []byte("p1"), TTL: 120,
			CDCP: &vepa.CDCP{Role: vepa.CDCPRoleBridge, SComp: true, ChnCap: 4, Pairs: []vepa.SChannel{{SCID: 1, SVID: 1}}}}).Frame(dst, bridge)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	nearestBridge := [6]byte{0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e}
	d.controlFrame(to(vepa.NearestNonTPMRBridge))
	d.controlFrame(to(vepa.NearestNonTPMRBridge))
	d.controlFrame(to(nearestBridge))
	l, err := d.LLDP(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if l.LLDP.Ignored != 3 || l.LLDP.Received != 3 || l.CDCP != nil {
		t.Fatalf("--cdcp off: lldp %+v cdcp %+v, want 3 received and ignored, no cdcp section", l.LLDP, l.CDCP)
	}

	d.opts.CDCP = CDCPAuto
	st, err := vepa.NewCDCPStation(vepa.CDCPConfig{MAC: mac, Send: func([]byte) error { return nil }, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	d.cdcp.Store(st)
	d.controlFrame(to(vepa.NearestNonTPMRBridge))
	d.controlFrame(withSTag(to(vepa.NearestNonTPMRBridge)))
	l, _ = d.LLDP(context.Background())
	if l.LLDP.Ignored != 3 || l.LLDP.Received != 3 {
		t.Errorf("with a CDCP agent the EVB station counted CDCP's LLDPDUs: %+v", l.LLDP)
	}
	if c := l.CDCP; c == nil || c.Mode != CDCPAuto || c.Received != 1 || c.Tagged != 1 {
		t.Errorf("cdcp %+v, want 1 received, 1 tagged", c)
	}
}

// withSTag inserts an S-tag (S-VID 10) after the addresses of f.
func withSTag(f []byte) []byte {
	out := append([]byte(nil), f[:12]...)
	out = append(out, 0x88, 0xa8, 0x00, 10)
	return append(out, f[12:]...)
}

// A bridge's RTE 31 (6 h a try) and, followed with --evb-rka remote, its
// RKA 0 (a keep-alive every 10 µs) are held to the sanity bounds: VDP gets
// RTE 18 and RKA 14, and GET /v1/lldp says what was clamped.
func TestLLDPTimersClamped(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	stationMAC := net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}
	send := func([]byte) error { return nil }
	local := vepa.EVB{R: 3, RTE: 8, RWD: 20, RKA: 20, ROLRKA: true}
	d := &Daemon{log: log, opts: Options{Uplink: "up0", LLDPInterval: 5 * time.Second, EVBLocal: &local}}
	vdp := lldpStations(t, d, stationMAC, send)
	bridge := [6]byte{0x02, 0xb7, 0x1d, 0x9e, 0, 1}
	e := vepa.EVB{Mode: vepa.ModeBridge, BridgeStatus: vepa.BridgeRRCAP | vepa.BridgeRRCTR, R: 7, RTE: 31, RWD: 20, RKA: 0}
	f, err := (&vepa.LLDPDU{ChassisSubtype: vepa.ChassisIDMAC, ChassisID: bridge[:], PortSubtype: vepa.PortIDIfName, PortID: []byte("p1"),
		TTL: 120, EVB: &e}).Frame(vepa.NearestCustomerBridge, bridge)
	if err != nil {
		t.Fatal(err)
	}
	d.controlFrame(f)
	if got := vdp.Timers(); got != (vepa.Timers{R: 7, RTE: 18, RWD: 20, RKA: 14}) {
		t.Errorf("VDP uses %+v, want RTE 18 and RKA 14 (the bounds)", got)
	}
	l, err := d.LLDP(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tm := l.Timers
	want := []api.EVBTimerClamp{{Param: "rte", Negotiated: 31, InUse: 18}, {Param: "rka", Negotiated: 0, InUse: 14}}
	if tm.RTE != 18 || tm.RKA != 14 || tm.ECPAckTimeoutUS != 2621440 || tm.KeepAliveUS != 163840 || !slices.Equal(tm.Clamped, want) {
		t.Errorf("timers %+v, want RTE 18, RKA 14, clamped %+v", tm, want)
	}
	// What vswitchd advertises for the followed RKA is the bound, so a
	// bridge taking the larger uses the keep-alive vswitchd sends.
	if x := l.Local.EVB; x.RKA != 14 || !x.ROLRKA {
		t.Errorf("advertised %+v, want RKA 14 with ROL", x)
	}
}

// lldpStations gives d an EVB station (LLDP every 5 s, its timers to
// d.timersChanged) and a VDP station, both sending with send, as runEVB
// and runVDP would, and returns the VDP station.
func lldpStations(t *testing.T, d *Daemon, mac net.HardwareAddr, send func([]byte) error) *vepa.VDPStation {
	t.Helper()
	evb, err := vepa.NewStation(vepa.StationConfig{MAC: mac, Send: send, RequestRelay: true, Local: d.evbLocal(), Interval: 5 * time.Second,
		OnTimers: d.timersChanged, Logger: d.log})
	if err != nil {
		t.Fatal(err)
	}
	vdp, err := vepa.NewVDPStation(vepa.VDPConfig{MAC: [6]byte(mac), Send: send, ManagerID: vepa.ManagerID(vdpManager), Logger: d.log})
	if err != nil {
		t.Fatal(err)
	}
	d.evb.Store(evb)
	d.vdp.Store(vdp)
	return vdp
}
