package daemon

import (
	"context"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/vepa"
)

// cdcpDaemon starts a rig's daemon with CDCP mode and a long LLDP
// interval (the tests feed the bridge's frames), then reports links up.
func cdcpDaemon(t *testing.T, mode string, links ...string) (*rig, *Daemon) {
	t.Helper()
	r := newRig(t)
	r.opts.LLDPInterval = 30e9
	r.opts.CDCP = mode
	d := r.start(t)
	r.linksUp(links...)
	return r, d
}

// withCDCP gives a started daemon a CDCP agent (not running: the test
// feeds the bridge's LLDPDUs through controlFrame); what it sends is
// dropped.
func withCDCP(t *testing.T, d *Daemon) *vepa.CDCPStation {
	t.Helper()
	st, err := vepa.NewCDCPStation(vepa.CDCPConfig{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, Required: d.cdcpMode() == CDCPOn,
		Send: func([]byte) error { return nil }, OnChange: d.cdcpChanged,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	d.cdcp.Store(st)
	d.syncChannelsLocked()
	d.mu.Unlock()
	return st
}

// bridgeCDCP is a bridge's LLDPDU to the nearest non-TPMR bridge granting
// pairs (the default S-channel first).
func bridgeCDCP(t *testing.T, pairs ...vepa.SChannel) []byte {
	t.Helper()
	d := &vepa.LLDPDU{ChassisSubtype: vepa.ChassisIDMAC, ChassisID: []byte{2, 0, 0, 0, 0, 0x99}, PortSubtype: vepa.PortIDIfName, PortID: []byte("p1"),
		TTL: 120, CDCP: &vepa.CDCP{Role: vepa.CDCPRoleBridge, SComp: true, ChnCap: 8, Pairs: append([]vepa.SChannel{{SCID: 1, SVID: 1}}, pairs...)}}
	f, err := d.Frame(vepa.NearestNonTPMRBridge, [6]byte{2, 0, 0, 0, 0, 0x99})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func portNamed(t *testing.T, d *Daemon, name string) api.Port {
	t.Helper()
	ps, err := d.ListPorts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.Name == name {
			if g, err := d.GetPort(context.Background(), name); err != nil || g.State != p.State || g.StateReason != p.StateReason {
				t.Fatalf("GET %s %+v (%v) disagrees with the list's %+v", name, g, err, p)
			}
			return p
		}
	}
	t.Fatalf("no port %s in %+v", name, ps)
	return api.Port{}
}

// auto: S-channel ports forward as configured until a bridge answers
// CDCP; then a port whose S-channel the bridge did not grant is down,
// with the reason, detached (its VM's frames go nowhere), and comes up
// when the bridge grants it; a port without S-channel is never held.
func TestCDCPHoldsPortsTheBridgeDidNotGrant(t *testing.T) {
	r, d := cdcpDaemon(t, "", "up0", "vnet1", "vnet2")
	ctx := context.Background()
	st := withCDCP(t, d)
	for _, p := range []struct {
		name string
		svid int
	}{{"vnet1", 10}, {"vnet2", 20}} { // in this order: the first S-VID asked for gets SCID 2
		if _, err := d.AddPort(ctx, api.PortSpec{Name: p.name, VLAN: intp(100), SVID: intp(p.svid)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.AddPort(ctx, api.PortSpec{Name: "vnet9", VLAN: intp(100)}); err != nil {
		t.Fatal(err)
	}
	if w := st.State().Wanted; len(w) != 3 || w[1] != (vepa.SChannel{SCID: 2, SVID: 10}) || w[2] != (vepa.SChannel{SCID: 3, SVID: 20}) {
		t.Fatalf("asked for %+v", w)
	}
	for _, n := range []string{"vnet1", "vnet2"} {
		if p := portNamed(t, d, n); p.State != "up" || p.StateReason != "" {
			t.Fatalf("no CDCP bridge (auto): %s %+v", n, p)
		}
	}
	// The bridge grants S-VID 10 only.
	d.controlFrame(bridgeCDCP(t, vepa.SChannel{SCID: 2, SVID: 10}))
	if p := portNamed(t, d, "vnet1"); p.State != "up" || p.StateReason != "" {
		t.Fatalf("granted vnet1: %+v", p)
	}
	p := portNamed(t, d, "vnet2")
	if p.State != "down" || !strings.Contains(p.StateReason, "S-VID 20") || !strings.Contains(p.StateReason, "not granted") || p.Problem != "" {
		t.Fatalf("vnet2 not granted (state_reason says why; problem stays for stored records only): %+v", p)
	}
	if r.mem.Iface("vnet2").Inject(frame(1, 2)) {
		t.Fatal("vnet2 still has an open queue")
	}
	if st, _ := d.Status(ctx); st.PortsUp != 1 || st.CDCP == nil || st.CDCP.Bridge != "02:00:00:00:00:99" || len(st.CDCP.Granted) != 2 || st.CDCP.Mode != "auto" {
		t.Fatalf("status %+v cdcp %+v", st, st.CDCP)
	}
	// A link event for the held port does not attach it.
	ev, _ := r.links.Link("vnet2")
	d.linkChanged(ev)
	if p := portNamed(t, d, "vnet2"); p.State != "down" {
		t.Fatalf("a link event attached a held port: %+v", p)
	}
	// Granted later: up, forwarding S-tagged.
	d.controlFrame(bridgeCDCP(t, vepa.SChannel{SCID: 2, SVID: 10}, vepa.SChannel{SCID: 3, SVID: 20}))
	if p := portNamed(t, d, "vnet2"); p.State != "up" || p.StateReason != "" {
		t.Fatalf("vnet2 granted later: %+v", p)
	}
	if !r.mem.Iface("vnet2").Inject(frame(1, 2)) {
		t.Fatal("vnet2 has no open queue after the grant")
	}
	// Moving vnet2 to another S-VID asks for it; the bridge has not granted
	// it yet: down again.
	if _, err := d.UpdatePort(ctx, "vnet2", api.PortSpec{SVID: intp(30)}); err != nil {
		t.Fatal(err)
	}
	if p := portNamed(t, d, "vnet2"); p.State != "down" || !strings.Contains(p.StateReason, "S-VID 30") {
		t.Fatalf("vnet2 on S-VID 30: %+v", p)
	}
	if w := st.State().Wanted; len(w) != 3 || w[1] != (vepa.SChannel{SCID: 2, SVID: 10}) || w[2] != (vepa.SChannel{SCID: 3, SVID: 30}) {
		t.Fatalf("asked for %+v after the move", w)
	}
	// Off its S-channel: never held.
	if _, err := d.UpdatePort(ctx, "vnet2", api.PortSpec{SVID: intp(0)}); err != nil {
		t.Fatal(err)
	}
	if p := portNamed(t, d, "vnet2"); p.State != "up" || p.StateReason != "" {
		t.Fatalf("vnet2 without S-channel: %+v", p)
	}
	if err := d.DeletePort(ctx, "vnet1"); err != nil {
		t.Fatal(err)
	}
	if w := st.State().Wanted; len(w) != 1 {
		t.Fatalf("still asking for %+v with no S-channel port", w)
	}
}

// on: S-channel ports are down until a bridge grants them, from the start.
func TestCDCPOnHoldsPortsWithoutAnAnswer(t *testing.T) {
	r := newRig(t)
	r.opts.LLDPInterval = 30e9
	r.opts.CDCP = CDCPOn
	d := r.start(t)
	ctx := context.Background()
	if _, err := d.AddPort(ctx, api.PortSpec{Name: "vnet1", VLAN: intp(100), SVID: intp(10)}); err != nil {
		t.Fatal(err)
	}
	r.linksUp("up0", "vnet1")
	// Before the agent runs (the EVB station waits for the uplink).
	if p := portNamed(t, d, "vnet1"); p.State != "down" || !strings.Contains(p.StateReason, "no CDCP answer") {
		t.Fatalf("before the agent: %+v", p)
	}
	withCDCP(t, d)
	if p := portNamed(t, d, "vnet1"); p.State != "down" {
		t.Fatalf("no answer yet: %+v", p)
	}
	d.controlFrame(bridgeCDCP(t, vepa.SChannel{SCID: 2, SVID: 10}))
	if p := portNamed(t, d, "vnet1"); p.State != "up" || p.StateReason != "" {
		t.Fatalf("granted: %+v", p)
	}
	// The bridge's goodbye: down again.
	bye := bridgeCDCP(t)
	bye[14+2+7+2+3+2+1] = 0 // the TTL TLV's value (120 -> 0)
	if dd, err := vepa.ParseFrame(bye); err != nil || dd.TTL != 0 {
		t.Fatalf("goodbye frame: %+v %v", dd, err)
	}
	d.controlFrame(bye)
	if p := portNamed(t, d, "vnet1"); p.State != "down" {
		t.Fatalf("after the bridge's goodbye: %+v", p)
	}
}

// A bridge with static S-channels numbers them its own way: asked for
// S-VID 10 as SCID 2 and 20 as SCID 3, it answers SCID 2 with S-VID 20
// and SCID 3 with 10. Both S-channels exist on the bridge, so both ports
// forward, and the status shows the bridge's SCIDs; when the bridge drops
// S-VID 10, its port is down and says what became of its SCID.
func TestCDCPFollowsTheBridgesSCIDs(t *testing.T) {
	_, d := cdcpDaemon(t, "", "up0", "vnet1", "vnet2")
	ctx := context.Background()
	withCDCP(t, d)
	for _, p := range []struct {
		name string
		svid int
	}{{"vnet1", 10}, {"vnet2", 20}} {
		if _, err := d.AddPort(ctx, api.PortSpec{Name: p.name, VLAN: intp(100), SVID: intp(p.svid)}); err != nil {
			t.Fatal(err)
		}
	}
	d.controlFrame(bridgeCDCP(t, vepa.SChannel{SCID: 2, SVID: 20}, vepa.SChannel{SCID: 3, SVID: 10}))
	for _, n := range []string{"vnet1", "vnet2"} {
		if p := portNamed(t, d, n); p.State != "up" || p.StateReason != "" {
			t.Fatalf("%s, its S-VID in the bridge's answer under another SCID: %+v", n, p)
		}
	}
	st, _ := d.Status(ctx)
	want := []api.CDCPChannel{{SVID: 10, SCID: 3, AskedSCID: 2, Granted: true}, {SVID: 20, SCID: 2, AskedSCID: 3, Granted: true}}
	if st.CDCP == nil || !slices.Equal(st.CDCP.Channels, want) {
		t.Fatalf("status channels %+v, want %+v", st.CDCP, want)
	}
	d.controlFrame(bridgeCDCP(t, vepa.SChannel{SCID: 2, SVID: 20}))
	p := portNamed(t, d, "vnet1")
	if p.State != "down" || !strings.Contains(p.StateReason, "SCID 2 S-VID 20 instead") {
		t.Fatalf("vnet1, S-VID 10 dropped by the bridge: %+v", p)
	}
	if p := portNamed(t, d, "vnet2"); p.State != "up" {
		t.Fatalf("vnet2: %+v", p)
	}
	st, _ = d.Status(ctx)
	if c := st.CDCP.Channels; len(c) != 2 || c[0].Granted || c[0].SCID != 2 || c[0].Reason != p.StateReason {
		t.Fatalf("status channels %+v", c)
	}
}

// GET /v1/lldp shows the CDCP bridge and its CDCP TLV (role, SComp,
// ChnCap, pairs) next to the one vswitchd sends, and the metrics count
// the S-channels the ports use, those granted and those held.
func TestCDCPInLLDPViewAndMetrics(t *testing.T) {
	_, d := cdcpDaemon(t, "", "up0", "vnet1", "vnet2")
	ctx := context.Background()
	withCDCP(t, d)
	evb, err := vepa.NewStation(vepa.StationConfig{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, Send: func([]byte) error { return nil }, Logger: d.log})
	if err != nil {
		t.Fatal(err)
	}
	d.evb.Store(evb)
	for _, p := range []struct {
		name string
		svid int
	}{{"vnet1", 10}, {"vnet2", 20}} {
		if _, err := d.AddPort(ctx, api.PortSpec{Name: p.name, VLAN: intp(100), SVID: intp(p.svid)}); err != nil {
			t.Fatal(err)
		}
	}
	l, err := d.LLDP(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c := l.CDCP; c == nil || c.Bridge != nil || c.Local == nil || c.Local.Role != "station" || !c.Local.SComp || c.Local.ChnCap != vepa.MaxCDCPPairs ||
		!slices.Equal(c.Local.Pairs, []api.SChannel{{SCID: 1, SVID: 1}, {SCID: 2, SVID: 10}, {SCID: 3, SVID: 20}}) {
		t.Fatalf("cdcp before any answer %+v", l.CDCP)
	}
	d.controlFrame(bridgeCDCP(t, vepa.SChannel{SCID: 3, SVID: 10}, vepa.SChannel{SCID: 4, SVID: 30}))
	l, _ = d.LLDP(ctx)
	b := l.CDCP.Bridge
	if b == nil || b.MAC != "02:00:00:00:00:99" || b.ChassisID != "02:00:00:00:00:99" || b.TTL != 120 || b.TTLLeft < 119 || b.LastSeen == "" {
		t.Fatalf("cdcp bridge %+v", b)
	}
	want := api.CDCPTLV{Role: "bridge", SComp: true, ChnCap: 8, Pairs: []api.SChannel{{SCID: 1, SVID: 1}, {SCID: 3, SVID: 10}, {SCID: 4, SVID: 30}}}
	if b.TLV.Role != want.Role || b.TLV.SComp != want.SComp || b.TLV.ChnCap != want.ChnCap || !slices.Equal(b.TLV.Pairs, want.Pairs) {
		t.Errorf("the bridge's CDCP TLV %+v, want %+v", b.TLV, want)
	}
	m := scrapeEVB(t, d)
	for _, w := range []string{`vswitch_cdcp_schannels_wanted{uplink="up0"} 2`, `vswitch_cdcp_schannels_granted{uplink="up0"} 1`,
		`vswitch_cdcp_schannels_held{uplink="up0"} 1`} {
		if !strings.Contains(m, w+"\n") {
			t.Errorf("metrics lack %s:\n%s", w, m)
		}
	}
}
