package integration

import (
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/vepa"
	"github.com/vswitch/vswitch/test/topo"
)

// evbBridge is a minimal EVB bridge on a port of the switch namespace: it
// answers the station's LLDPDUs with the bridge's EVB TLV (RRCAP when
// capable, RRCTR when capable and asked), as 802.1Qbg and lldpad do.
type evbBridge struct {
	t    *testing.T
	conn *topo.PacketConn
	mac  [6]byte
	stop chan struct{}
	done chan struct{}

	mu       sync.Mutex
	capable  bool
	station  *vepa.EVB // last station TLV heard
	received int
}

func startEVBBridge(t *testing.T, ns *topo.NS, port string, capable bool) *evbBridge {
	t.Helper()
	conn, err := ns.PacketConn(port)
	if err != nil {
		t.Fatal(err)
	}
	b := &evbBridge{t: t, conn: conn, mac: [6]byte{0x02, 0xb7, 0x1d, 0x9e, 0x00, 0x01}, capable: capable,
		stop: make(chan struct{}), done: make(chan struct{})}
	go b.loop()
	t.Cleanup(func() { close(b.stop); <-b.done; conn.Close() })
	return b
}

func (b *evbBridge) setCapable(on bool) {
	b.mu.Lock()
	b.capable = on
	b.mu.Unlock()
}

func (b *evbBridge) lastStation() (vepa.EVB, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.station == nil {
		return vepa.EVB{}, b.received
	}
	return *b.station, b.received
}

func (b *evbBridge) loop() {
	defer close(b.done)
	next := time.Now()
	for {
		select {
		case <-b.stop:
			return
		default:
		}
		if f, err := b.conn.ReadFrame(50 * time.Millisecond); err == nil {
			if d, err := vepa.ParseFrame(f); err == nil && d.EVB != nil && d.EVB.Mode == vepa.ModeStation {
				b.mu.Lock()
				e := *d.EVB
				b.station = &e
				b.received++
				b.mu.Unlock()
				next = time.Now() // answer at once
			}
		}
		if time.Now().Before(next) {
			continue
		}
		next = time.Now().Add(200 * time.Millisecond)
		b.mu.Lock()
		e := vepa.EVB{Mode: vepa.ModeBridge, R: 3, RTE: 8, RWD: 20, RKA: 20}
		if b.capable {
			e.BridgeStatus = vepa.BridgeRRCAP
			if b.station != nil && b.station.StationStatus&vepa.StationRRREQ != 0 {
				e.BridgeStatus |= vepa.BridgeRRCTR
			}
		}
		if b.station != nil {
			e.StationStatus = b.station.StationStatus
		}
		b.mu.Unlock()
		d := &vepa.LLDPDU{ChassisSubtype: vepa.ChassisIDMAC, ChassisID: b.mac[:], PortSubtype: vepa.PortIDIfName,
			PortID: []byte("p1"), TTL: 120, EVB: &e}
		f, err := d.Frame(vepa.NearestCustomerBridge, b.mac)
		if err != nil {
			b.t.Errorf("evb bridge: %v", err)
			return
		}
		_ = b.conn.WriteFrame(f)
	}
}

// waitRelay polls the status until cond holds.
func (h *hv) waitRelay(what string, timeout time.Duration, cond func(st api.Status) bool) api.Status {
	t := h.lab.t
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := h.status()
		if st.Relay != nil && cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached after %v; status mode %s configured %s relay %+v", what, timeout, st.Mode, st.ConfiguredMode, st.Relay)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A bridge that cannot reflect (no RRCAP) makes vswitchd switch VM to VM
// traffic locally (VEB) although VEPA is configured, so the VMs keep
// talking without hairpin; when the bridge grants reflective relay the
// switch goes back to VEPA and tells the bridge RRSTAT yes.
func TestEVBRelayNegotiation(t *testing.T) {
	forEachDatapath(t, func(t *testing.T, dp string) {
		l, hvs := newLab(t, dp, 1)
		h := hvs[0]
		if err := topo.Hairpin(l.sw, h.swPort, false); err != nil {
			t.Fatal(err)
		}
		br := startEVBBridge(t, l.sw, h.swPort, false)
		vm1, vm2 := h.addVM(1), h.addVM(2)
		h.start("--lldp-interval", "1s")
		h.addPort(vm1.port, "--vlan", "100")
		h.addPort(vm2.port, "--vlan", "100")
		peer := net.HardwareAddr(br.mac[:]).String()

		st := h.waitRelay("refused", 5*time.Second, func(st api.Status) bool { return st.Relay.State == "refused" })
		if st.Mode != "veb" || st.ConfiguredMode != "vepa" || st.Relay.Peer != peer {
			t.Errorf("refused: mode %s configured %s peer %s, want veb vepa %s", st.Mode, st.ConfiguredMode, st.Relay.Peer, peer)
		}
		vm1.mustPing(vm2) // switched locally: no hairpin on the bridge
		m := h.metrics()
		for _, want := range []string{
			`vswitch_reflective_relay{state="refused",uplink="uplink"} 1`,
			`vswitch_reflective_relay{state="granted",uplink="uplink"} 0`,
			`vswitch_forwarding_mode{configured="vepa",mode="veb"} 1`,
			`vswitch_forwarding_mode{configured="vepa",mode="vepa"} 0`,
		} {
			if !strings.Contains(m, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
		if e, n := br.lastStation(); n == 0 || e.StationStatus&vepa.StationRRREQ == 0 || e.RRStat() != vepa.RRStatNo {
			t.Errorf("bridge heard %d station TLVs, last %+v: want RRREQ and RRSTAT no", n, e)
		}

		if err := topo.Hairpin(l.sw, h.swPort, true); err != nil {
			t.Fatal(err)
		}
		br.setCapable(true)
		st = h.waitRelay("granted", 5*time.Second, func(st api.Status) bool { return st.Relay.State == "granted" })
		if st.Mode != "vepa" {
			t.Errorf("granted: mode %s, want vepa", st.Mode)
		}
		deadline := time.Now().Add(3 * time.Second)
		for {
			if e, _ := br.lastStation(); e.RRStat() == vepa.RRStatYes {
				break
			}
			if time.Now().After(deadline) {
				e, _ := br.lastStation()
				t.Fatalf("station never reported RRSTAT yes (last %+v)", e)
			}
			time.Sleep(50 * time.Millisecond)
		}
		vm2.mustPing(vm1) // through the relay again
		if m := h.metrics(); !strings.Contains(m, `vswitch_reflective_relay{state="granted",uplink="uplink"} 1`) ||
			!strings.Contains(m, `vswitch_forwarding_mode{configured="vepa",mode="vepa"} 1`) || !strings.Contains(m, `vswitch_uplink_control_frames_total{uplink="uplink"}`) {
			t.Errorf("metrics after the grant do not say granted/vepa with control frames:\n%s", m)
		}

		// A third party on the bridge cannot take the relay state over
		// nor reset it: its LLDPDU tagged with VLAN 100 (refusing relay),
		// its untagged EVB TLV, its shutdown LLDPDU, its ECP frames
		// (tagged and untagged) are refused and counted; the relay stays
		// granted by the bridge, not even flapping (Updated unchanged).
		thirdPartyMeddles(t, l, h, peer, st.Relay.Updated)

		// The bridge's LLDPDUs are control frames handled by the
		// station, not drops.
		stats := h.stats()
		if stats.Uplink.Control == 0 || stats.Uplink.Drops["control_unhandled"] != 0 {
			t.Errorf("uplink control frames %d, control_unhandled drops %d: want LLDP counted as handled",
				stats.Uplink.Control, stats.Uplink.Drops["control_unhandled"])
		}
	})
}

// Without an EVB bridge (the plain hairpin bridge of the other tests) the
// relay state stays unknown and VEPA stays on; --lldp-interval 0 turns the
// station off and the status has no relay.
func TestEVBWithoutBridge(t *testing.T) {
	needBinaries(t)
	t.Parallel()
	l, hvs := newLab(t, "afpacket", 1)
	h := hvs[0]
	capt, err := l.sw.Capture(h.swPort, topo.WithOutgoing(false))
	if err != nil {
		t.Fatal(err)
	}
	h.start("--lldp-interval", "1s")
	time.Sleep(1500 * time.Millisecond)
	st := h.status()
	if st.Relay == nil || st.Relay.State != "unknown" || st.Mode != "vepa" {
		t.Errorf("no EVB bridge: mode %s relay %+v, want vepa and unknown", st.Mode, st.Relay)
	}
	n := 0
	for _, f := range capt.Stop() {
		if d, err := vepa.ParseFrame(f.Data); err == nil && d.EVB != nil && d.EVB.Mode == vepa.ModeStation {
			n++
		}
	}
	if n < 2 {
		t.Errorf("saw %d station LLDPDUs on the bridge port in 1.5 s, want >= 2 (fast start)", n)
	}
	// VDP talks only to an EVB bridge: the VSI of a port with a MAC waits.
	vm1 := h.addVM(1)
	h.addPort(vm1.port, "--vlan", "100", "--mac", vm1.mac.String())
	h.waitVSIs("VSI waiting", 3*time.Second, func(vs []api.VSI) bool { return len(vs) == 1 && vs[0].State == "waiting" })
	if err := h.d.kill(syscall.SIGTERM, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	h.start("--lldp-interval", "0")
	if st := h.status(); st.Relay != nil {
		t.Errorf("--lldp-interval 0: relay %+v, want none", st.Relay)
	}
}

// thirdPartyMeddles plugs a third party into the switch namespace's
// bridge and has it send what used to move the relay state: an LLDPDU
// tagged with VLAN 100 from another sender (refusing relay), the same
// untagged, a shutdown LLDPDU (TTL 0), an ECP acknowledgement and request,
// tagged and not. The bridge (br0, STP off) floods 01:80:c2:00:00:00 to
// the hypervisor's uplink. Then the relay must still be granted by peer
// with the same Updated time, and each refusal counted.
func thirdPartyMeddles(t *testing.T, l *lab, h *hv, peer, updated string) {
	t.Helper()
	if err := topo.VethPair(l.sw, "tp0", l.sw, "tp1"); err != nil {
		t.Fatal(err)
	}
	if err := topo.AddBridgePort(l.sw, "br0", topo.Port{Name: "tp0"}); err != nil {
		t.Fatal(err)
	}
	if err := l.sw.SetUp("tp1"); err != nil {
		t.Fatal(err)
	}
	conn, err := l.sw.PacketConn("tp1")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	relayLogs := func() int { // vswitchd logs each change of the relay state
		b, _ := os.ReadFile(h.logf)
		return strings.Count(string(b), `msg="reflective relay"`)
	}
	changes := relayLogs()
	third := [6]byte{0x02, 0x66, 0x66, 0x66, 0x66, 0x01}
	lldp := func(ttl uint16, e *vepa.EVB) []byte {
		d := &vepa.LLDPDU{ChassisSubtype: vepa.ChassisIDMAC, ChassisID: third[:], PortSubtype: vepa.PortIDIfName, PortID: []byte("evil"), TTL: ttl, EVB: e}
		f, err := d.Frame(vepa.NearestCustomerBridge, third)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	tag := func(f []byte) []byte { // C-tag, VLAN 100
		return append(append(append([]byte{}, f[:12]...), 0x81, 0x00, 0x00, 100), f[12:]...)
	}
	refuse := &vepa.EVB{Mode: vepa.ModeBridge, R: 3, RTE: 8, RWD: 20, RKA: 20} // no RRCAP
	ecpAck := vepa.ECPFrame(third, vepa.ECPAck, vepa.ECPSubtypeVDP, 1, nil)
	ecpReq := vepa.ECPFrame(third, vepa.ECPRequest, vepa.ECPSubtypeVDP, 2, nil)
	want := map[string]uint64{"lldp_tagged": 1, "lldp_foreign_peer": 1, "lldp_foreign_shutdown": 1, "ecp_tagged": 1, "ecp_foreign_peer": 2}
	deadline := time.Now().Add(5 * time.Second)
	for {
		// Sent again each round: nothing guarantees the first copies
		// crossed (the bridge port may still be learning its state).
		for _, f := range [][]byte{tag(lldp(120, refuse)), lldp(120, refuse), lldp(0, nil), tag(ecpAck), ecpAck, ecpReq} {
			if err := conn.WriteFrame(f); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(300 * time.Millisecond)
		got := h.stats().Uplink.ControlRejected
		ok := true
		for k, n := range want {
			ok = ok && got[k] >= n
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("control frames of a third party not refused and counted: control_rejected %v, want at least %v", got, want)
		}
	}
	time.Sleep(500 * time.Millisecond) // the bridge answers twice meanwhile
	if n := relayLogs(); n != changes {
		t.Errorf("the relay state changed %d times while the third party sent (log:\n%s)", n-changes, h.logTail(20))
	}
	st := h.status()
	if st.Relay == nil || st.Relay.State != "granted" || st.Relay.Peer != peer || st.Relay.Updated != updated || st.Mode != "vepa" {
		t.Errorf("after the third party: mode %s relay %+v, want vepa, granted by %s since %s", st.Mode, st.Relay, peer, updated)
	}
	m := h.metrics()
	for _, want := range []string{
		`vswitch_uplink_control_rejected_total{protocol="lldp",reason="tagged",uplink="uplink"}`,
		`vswitch_uplink_control_rejected_total{protocol="lldp",reason="foreign_shutdown",uplink="uplink"}`,
		`vswitch_uplink_control_rejected_total{protocol="ecp",reason="foreign_peer",uplink="uplink"}`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
