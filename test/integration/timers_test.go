package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/vepa"
	"github.com/vswitch/vswitch/test/topo"
)

// lldp is GET /v1/lldp of the hypervisor's vswitchd.
func (h *hv) lldp() api.LLDP {
	t := h.lab.t
	t.Helper()
	c := api.NewClient(h.sock)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l, err := c.LLDP(ctx)
	if err != nil {
		t.Fatalf("GET /v1/lldp: %v", err)
	}
	return l
}

// waitLLDP polls GET /v1/lldp until cond holds.
func (h *hv) waitLLDP(what string, timeout time.Duration, cond func(api.LLDP) bool) api.LLDP {
	t := h.lab.t
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		l := h.lldp()
		if cond(l) {
			return l
		}
		if time.Now().After(deadline) {
			b, _ := json.Marshal(l)
			t.Fatalf("%s: not reached after %v: %s", what, timeout, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// vsiArrivals watches lldpad's log until it received n more VSI TLVs on
// port than skip, and returns when it saw each (to the 20 ms it polls at)
// and the count to skip next time.
func vsiArrivals(t *testing.T, lp *topo.LLDPAD, port string, skip, n int, timeout time.Duration) ([]time.Time, int) {
	t.Helper()
	var at []time.Time
	deadline := time.Now().Add(timeout)
	for {
		var mine int
		for _, v := range lp.ReceivedVSIs() {
			if v.Port == port {
				mine++
			}
		}
		now := time.Now()
		for len(at) < mine-skip {
			at = append(at, now)
		}
		if len(at) >= n {
			return at[:n], skip + n
		}
		if now.After(deadline) {
			t.Fatalf("lldpad received %d VSI TLVs on %s within %v, want %d", len(at), port, timeout, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// medianGap is the median time between successive arrivals.
func medianGap(at []time.Time) time.Duration {
	var g []time.Duration
	for i := 1; i < len(at); i++ {
		g = append(g, at[i].Sub(at[i-1]))
	}
	slices.Sort(g)
	return g[len(g)/2]
}

// The timers against lldpad: lldpad as the bridge proposes R 5, RTE 12 and
// RKA 16 (655 ms), vswitchd R 3, RTE 8, RKA 14 (164 ms); each side uses the
// larger, and GET /v1/lldp, vswctl lldp and the metrics say so. lldpad then
// sees a keep-alive of the VSI every 655 ms. Its RKA changed live to 18
// (2.6 s), vswitchd follows with its next LLDPDU and the keep-alives come
// 2.6 s apart: the keep-alive period visibly follows the bridge's RKA.
// lldpad's RTE is 12 (41 ms: ECP gives up after 6 tries, 246 ms): with 10
// (61 ms in all) a keep-alive's acknowledgements were once all late on a
// loaded test machine, which the test counts as a failure.
func TestEVBTimersWithLLDPAD(t *testing.T) {
	forEachDatapath(t, func(t *testing.T, dp string) {
		l, hvs := newLab(t, dp, 1)
		h := hvs[0]
		lp := lldpadBridge(t, l, true, h)
		for _, kv := range []string{"ecpretries=5", "ecprte=12", "vdprka=16"} {
			if _, err := lp.Tool("-T", "-i", h.swPort, "-g", "ncb", "-V", "evb", "-c", kv); err != nil {
				t.Fatalf("lldptool %s: %v", kv, err)
			}
		}
		mac, err := l.sw.MAC(h.swPort)
		if err != nil {
			t.Fatal(err)
		}
		vm1 := h.addVM(1)
		h.start("--lldp-interval", "1s", "--evb-r", "3", "--evb-rte", "8", "--evb-rka", "14")
		h.addPort(vm1.port, "--vlan", "100", "--mac", vm1.mac.String())

		ll := h.waitLLDP("lldpad's timers in use", 15*time.Second, func(l api.LLDP) bool {
			return l.Timers != nil && l.Timers.RKA == 16 && l.Timers.R == 5 && l.Timers.RTE == 12 && l.Peer != nil && l.Peer.EVB != nil && l.Peer.EVB.RRStat == "yes"
		})
		p := ll.Peer
		if p == nil || p.MAC != mac.String() || p.ChassisID != mac.String() || p.ChassisIDSubtype != "MAC address" || p.PortID == "" ||
			p.TTL != 120 || p.TTLLeft < 100 || p.TTLLeft > 120 || p.EVB == nil {
			t.Fatalf("peer %+v, want lldpad on %s (%s) with TTL 120", p, h.swPort, mac)
		}
		if x := p.EVB; x.Mode != "bridge" || !slices.Contains(x.BridgeStatus, "rrcap") || !slices.Contains(x.BridgeStatus, "rrctr") ||
			x.R != 5 || x.RTE != 12 || x.RKA != 16 || x.ROLRKA || x.RWD != 20 || !x.ROLRWD || x.RRStat != "yes" || !slices.Contains(x.StationStatus, "rrreq") {
			t.Errorf("lldpad's TLV as decoded: %+v", x) // RWD: 20 both sides, lldpad marks a tie as ours (ROL)
		}
		if x := ll.Local.EVB; x.Mode != "station" || x.R != 3 || x.RTE != 8 || x.RKA != 14 || x.ROLRKA || x.RWD != 20 {
			t.Errorf("our TLV: %+v", x)
		}
		if tm := ll.Timers; tm.RKAFrom != "bridge" || tm.RFrom != "bridge" || tm.RWDFrom != "both" || tm.KeepAliveUS != 655360 || tm.ECPAckTimeoutUS != 40960 {
			t.Errorf("timers %+v", tm)
		}
		// lldpad's own view of what we sent: our proposals, not an echo.
		if out, err := lp.ReceivedEVB(h.swPort); err != nil || !strings.Contains(out, "retries:3 rte:8") || !strings.Contains(out, "rka:14") {
			t.Errorf("lldpad received from vswitchd:\n%s (%v)", out, err)
		}
		h.waitVSIs("VSI associated by lldpad", 15*time.Second, func(vs []api.VSI) bool { return len(vs) == 1 && vs[0].State == "associated" })

		// Keep-alives every 655 ms (RKA 16), as lldpad receives them.
		skip := 0
		_, skip = vsiArrivals(t, lp, h.swPort, skip, 1, 5*time.Second) // one, to start from
		at, _ := vsiArrivals(t, lp, h.swPort, skip, 7, 10*time.Second)
		g16 := medianGap(at)
		if g16 < 600*time.Millisecond || g16 > 800*time.Millisecond {
			t.Errorf("keep-alives %v apart with RKA 16, want about %v", g16, vepa.Timer(16))
		}

		// lldpad's RKA raised live to 18: vswitchd takes it with lldpad's
		// next LLDPDU.
		if _, err := lp.Tool("-T", "-i", h.swPort, "-g", "ncb", "-V", "evb", "-c", "vdprka=18"); err != nil {
			t.Fatal(err)
		}
		changed := time.Now()
		h.waitLLDP("lldpad's new RKA in use", 40*time.Second, func(l api.LLDP) bool { return l.Timers != nil && l.Timers.RKA == 18 })
		t.Logf("RKA 18 in use %v after lldptool set it", time.Since(changed).Round(time.Millisecond))
		_, skip = vsiArrivals(t, lp, h.swPort, len(recordsOn(lp, h.swPort)), 1, 6*time.Second)
		at, _ = vsiArrivals(t, lp, h.swPort, skip, 4, 15*time.Second)
		g18 := medianGap(at)
		if g18 < 2500*time.Millisecond || g18 > 2850*time.Millisecond {
			t.Errorf("keep-alives %v apart with RKA 18, want about %v (%v with RKA 16)", g18, vepa.Timer(18), g16)
		}
		t.Logf("keep-alive period at lldpad: %v with its RKA 16, %v with 18", g16, g18)
		if vs := h.waitVSIs("still associated", 5*time.Second, func(vs []api.VSI) bool { return len(vs) == 1 }); vs[0].State != "associated" {
			t.Errorf("VSI %+v after the change", vs[0])
		}

		// The operator's views.
		ll = h.lldp()
		if ll.VDP.KeepAlives < 8 || ll.VDP.Timeouts != 0 || ll.VDP.VSIs["associated"] != 1 || ll.ECP.Sent < 9 || ll.ECP.Acked < 9 || ll.ECP.TimedOut != 0 {
			t.Errorf("counters vdp %+v ecp %+v", ll.VDP, ll.ECP)
		}
		// The VSI lived through the change: vswitchd refreshed it at once
		// when the period grew, before lldpad's timer, still armed for
		// 1.5 × the old period (1.15 s), ran out.
		if ll.VDP.BridgeDeassociations != 0 || strings.Contains(lp.Output(), "timeout keep alive timer") {
			t.Errorf("lldpad timed the VSI out (%d de-associations by the bridge)", ll.VDP.BridgeDeassociations)
		}
		out := h.mustCtl("lldp")
		t.Logf("vswctl lldp:\n%s", out)
		words := strings.Join(strings.Fields(out), " ") // the table's spacing aside
		for _, want := range []string{"RKA 18 bridge 14 18 keep-alive 2.621s", "R 5 bridge 3 5 6 tries at most",
			"chassis " + mac.String() + " (MAC address)", "ttl:"} {
			if !strings.Contains(words, want) {
				t.Errorf("vswctl lldp lacks %q:\n%s", want, out)
			}
		}
		if out := h.mustCtl("neighbors", "-o", "json"); !strings.Contains(out, `"rka": 18`) || !strings.Contains(out, `"keepalive_us": 2621440`) {
			t.Errorf("vswctl neighbors -o json:\n%s", out)
		}
		m := h.metrics()
		for _, want := range []string{`vswitch_evb_timer_seconds{timer="keepalive"} 2.62144`, `vswitch_vsis{state="associated"} 1`,
			`vswitch_vsis{state="failed"} 0`, `vswitch_reflective_relay_state{uplink="uplink"} 1`, `vswitch_ecp_timeouts_total{uplink="uplink"} 0`,
			`vswitch_ecp_retransmissions_total{uplink="uplink"}`, `vswitch_reflective_relay{state="granted",uplink="uplink"} 1`} {
			if !strings.Contains(m, want) {
				t.Errorf("metrics lack %q", want)
			}
		}
		if t.Failed() {
			t.Logf("metrics:\n%s", grepLines(m, "vswitch_evb", "vswitch_vdp", "vswitch_ecp", "vswitch_reflective"))
		}
	})
}

// recordsOn are the VSI TLVs lldpad received on port so far.
func recordsOn(lp *topo.LLDPAD, port string) []topo.VSIRecord {
	var out []topo.VSIRecord
	for _, v := range lp.ReceivedVSIs() {
		if v.Port == port {
			out = append(out, v)
		}
	}
	return out
}

// grepLines keeps the lines of s that start with one of the prefixes.
func grepLines(s string, prefixes ...string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(line, p) {
				fmt.Fprintln(&b, line)
				break
			}
		}
	}
	return b.String()
}

// Without an EVB bridge GET /v1/lldp has no peer and the local timers in
// use (--evb-rka remote: the default until a bridge says otherwise;
// advertised as the least RKA vswitchd uses, 14, with ROL), and
// vswctl lldp says so; with --lldp-interval 0 there is no station at all.
func TestLLDPWithoutBridge(t *testing.T) {
	forEachDatapath(t, func(t *testing.T, dp string) {
		_, hvs := newLab(t, dp, 1)
		h := hvs[0]
		h.start("--lldp-interval", "1s", "--evb-rte", "12", "--evb-rka", "remote")
		l := h.waitLLDP("LLDPDUs sent", 5*time.Second, func(l api.LLDP) bool { return l.LLDP != nil && l.LLDP.Sent >= 1 })
		if !l.Station || l.Peer != nil || l.Relay.State != "unknown" || l.Timers.RTE != 12 || l.Timers.RKA != 20 || l.Timers.RKAFrom != "local" ||
			!l.Local.FollowRKA || l.Local.EVB.RKA != 14 || !l.Local.EVB.ROLRKA || l.Local.EVB.RTE != 12 || l.Local.EVB.RRStat != "unknown" {
			t.Errorf("GET /v1/lldp without a bridge: %+v local %+v timers %+v", l, l.Local, l.Timers)
		}
		out := strings.Join(strings.Fields(h.mustCtl("lldp")), " ")
		if !strings.Contains(out, "bridge: none heard") || !strings.Contains(out, "RKA 20 local remote - keep-alive 10.486s") {
			t.Errorf("vswctl lldp without a bridge:\n%s", out)
		}
		if err := h.d.kill(syscall.SIGTERM, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		h.start("--lldp-interval", "0")
		if l := h.lldp(); l.Station || l.Timers != nil || l.Uplink != "uplink" {
			t.Errorf("GET /v1/lldp with no station: %+v", l)
		}
		if out := h.mustCtl("lldp"); !strings.Contains(out, "off (vswitchd --lldp-interval 0)") {
			t.Errorf("vswctl lldp with no station:\n%s", out)
		}
		if m := h.metrics(); strings.Contains(m, "vswitch_reflective_relay_state") || strings.Contains(m, "vswitch_vsis") {
			t.Errorf("EVB series exported with no station:\n%s", grepLines(m, "vswitch_reflective", "vswitch_vdp"))
		}
	})
}
