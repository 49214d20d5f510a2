package integration

import (
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/test/evbbridge"
)

// CDCP against the test bridge: vswitchd asks for the S-channels of its
// ports (S-VIDs 10 and 20); the bridge grants 10 only. The ports on 10
// forward (tenant A's VMs reach each other through the bridge, S-tagged);
// the ports on 20 are down with the reason and carry nothing; granted
// later, they come up and forward; a bridge that takes the grant back
// brings them down again. VDP follows: the VSI of a port on 10 is
// associated over S-tagged ECP on 10, while that of a port on 20 waits and
// the bridge receives nothing on 20 until it grants it.
func TestCDCPWithEVBBridge(t *testing.T) {
	forEachDatapath(t, func(t *testing.T, dp string) {
		l, hvs := newLab(t, dp, 1)
		h := hvs[0]
		evb := evbbridge.DefaultEVB
		evb.RKA = 16 // VDP keep-alives every 655 ms: a held S-channel's silence shows within seconds
		peer := evbPeer(t, l, h, evbbridge.Config{EVB: evb, CDCP: &evbbridge.CDCPConfig{ChnCap: 8, Grant: evbbridge.GrantSVIDs(10)}})
		vm1, vm2, vm3, vm4 := h.addVM(1), h.addVM(2), h.addVM(3), h.addVM(4)
		h.start("--lldp-interval", "1s", "--evb-rka", "16")
		waitCDCP := func(what string, cond func(c *api.CDCPStatus) bool) *api.CDCPStatus {
			t.Helper()
			var st api.Status
			deadline := time.Now().Add(15 * time.Second)
			for {
				if st = h.status(); st.CDCP != nil && cond(st.CDCP) {
					return st.CDCP
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: not reached; cdcp %+v", what, st.CDCP)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		waitCDCP("the bridge's CDCP answer", func(c *api.CDCPStatus) bool { return c.Bridge != "" && c.Mode == "auto" })
		h.addPort(vm1.port, "--vlan", "100", "--svid", "10", "--mac", vm1.mac.String())
		h.addPort(vm2.port, "--vlan", "100", "--svid", "10")
		h.mustCtl("add-port", vm3.port, "--vlan", "100", "--svid", "20", "--mac", vm3.mac.String())
		h.mustCtl("add-port", vm4.port, "--vlan", "100", "--svid", "20")
		waitCDCP("S-VID 20 asked for, 10 granted", func(c *api.CDCPStatus) bool {
			return len(c.Wanted) == 3 && len(c.Granted) == 2 && c.Granted[1].SVID == 10
		})
		for _, v := range []*vm{vm3, vm4} {
			h.waitState(v.port, "down", 10*time.Second)
		}
		for _, p := range h.ports() {
			switch p.Name {
			case vm1.port, vm2.port:
				if p.State != "up" || p.StateReason != "" {
					t.Errorf("granted port %+v", p)
				}
			case vm3.port, vm4.port:
				if !strings.Contains(p.StateReason, "S-VID 20") || !strings.Contains(p.StateReason, "not granted") {
					t.Errorf("port not granted: problem %q", p.StateReason)
				}
			}
		}
		if out := h.mustCtl("list-ports"); !strings.Contains(out, "not granted") {
			t.Errorf("vswctl list-ports does not show why:\n%s", out)
		}
		if out := h.mustCtl("status"); !strings.Contains(out, "asked 10 20, granted 10") {
			t.Errorf("vswctl status does not show the S-channels:\n%s", out)
		}
		sc, ok := peer.StationCDCP()
		if !ok || sc.Role != evbbridge.RoleS || !sc.SComp || len(sc.Pairs) != 3 || sc.Pairs[0] != (evbbridge.Pair{SCID: 1, SVID: 1}) ||
			sc.Pairs[1].SVID != 10 || sc.Pairs[2].SVID != 20 || sc.Pairs[1].SCID == sc.Pairs[2].SCID {
			t.Fatalf("the bridge heard %+v (%v)", sc, ok)
		}
		vm2.mustPing(vm1)
		vm4.mustNotPing(vm3, "S-channel 20 is not granted")
		// VDP: vm1's VSI associated on S-channel 10; vm3's waits for its
		// S-channel, and nothing reached the bridge on S-VID 20.
		h.waitVSIs("vm1's VSI associated, vm3's waiting", 10*time.Second, func(vs []api.VSI) bool {
			return len(vs) == 2 && vs[0].Port == vm1.port && vs[0].State == "associated" && vs[0].SVID == 10 &&
				vs[1].Port == vm3.port && vs[1].State == "waiting" && strings.Contains(vs[1].Reason, "not granted")
		})
		for _, r := range peer.Requests() {
			if r.SVID == 20 {
				t.Errorf("the bridge received a VDP request on S-VID 20, not granted: %+v", r)
			}
		}

		// Granted later: up, and forwarding.
		peer.SetCDCP(&evbbridge.CDCPConfig{ChnCap: 8})
		for _, v := range []*vm{vm3, vm4} {
			h.waitState(v.port, "up", 10*time.Second)
		}
		vm4.mustPing(vm3)
		vm2.mustNotPing(vm4, "vm4 is on S-channel 20, vm2 on 10")
		if _, err := peer.WaitRequest(10*time.Second, "vm3's ASSOC on S-VID 20", func(r evbbridge.Request) bool {
			return r.SVID == 20 && r.VSI.Mode == evbbridge.Assoc && r.VSI.Filters[0].MAC.String() == vm3.mac.String()
		}); err != nil {
			t.Fatal(err)
		}
		h.waitVSIs("vm3's VSI associated on S-channel 20", 10*time.Second, func(vs []api.VSI) bool {
			return len(vs) == 2 && vs[1].State == "associated" && vs[1].SVID == 20
		})

		// Taken back: down again.
		peer.SetCDCP(&evbbridge.CDCPConfig{ChnCap: 8, Grant: evbbridge.GrantSVIDs(10)})
		h.waitState(vm3.port, "down", 10*time.Second)
		h.waitVSIs("vm3's VSI waiting again", 10*time.Second, func(vs []api.VSI) bool {
			return len(vs) == 2 && vs[1].State == "waiting"
		})
		n := len(peer.Requests())
		vm2.mustPing(vm1)
		time.Sleep(2 * time.Second) // three keep-alive periods (RKA 16)
		on10 := 0
		for _, r := range peer.Requests()[n:] {
			switch r.SVID {
			case 10:
				on10++
			case 20:
				t.Errorf("the bridge received a VDP request on S-VID 20 after taking it back: %+v", r)
			}
		}
		if on10 == 0 {
			t.Error("no keep-alive of vm1's VSI on S-VID 10 in 2 s: the silence on 20 proves nothing")
		}
	})
}

// A bridge whose S-channels are configured statically numbers them its own
// way: its SCID 2 is S-VID 20 and its SCID 3 S-VID 10, whatever the
// station asks (the test bridge's Grant looks at the SCID only).
// vswitchd asks for S-VID 10 as SCID 2 and 20 as SCID 3; both S-VIDs are
// in the bridge's answer, so, as clause 42's station follows the bridge's
// pairs, every port forwards on its S-channel (with --cdcp on, so nothing
// is static), and status shows the bridge's SCIDs.
func TestCDCPBridgeNumbersSChannels(t *testing.T) {
	forEachDatapath(t, func(t *testing.T, dp string) {
		l, hvs := newLab(t, dp, 1)
		h := hvs[0]
		static := map[uint16]uint16{2: 20, 3: 10}
		evbPeer(t, l, h, evbbridge.Config{CDCP: &evbbridge.CDCPConfig{ChnCap: 8, Grant: func(want evbbridge.Pair) (uint16, bool) {
			svid, ok := static[want.SCID]
			return svid, ok
		}}})
		vm1, vm2, vm3, vm4 := h.addVM(1), h.addVM(2), h.addVM(3), h.addVM(4)
		h.start("--lldp-interval", "1s", "--cdcp", "on")
		for _, p := range []struct {
			v    *vm
			svid string
		}{{vm1, "10"}, {vm2, "10"}, {vm3, "20"}, {vm4, "20"}} { // 10 first: it is asked for as SCID 2
			h.mustCtl("add-port", p.v.port, "--vlan", "100", "--svid", p.svid)
		}
		for _, v := range []*vm{vm1, vm2, vm3, vm4} {
			h.waitState(v.port, "up", 15*time.Second)
		}
		st := h.status()
		want := []api.CDCPChannel{{SVID: 10, SCID: 3, AskedSCID: 2, Granted: true}, {SVID: 20, SCID: 2, AskedSCID: 3, Granted: true}}
		if st.CDCP == nil || !slices.Equal(st.CDCP.Channels, want) || len(st.CDCP.Wanted) != 3 || st.CDCP.Wanted[1] != (api.SChannel{SCID: 2, SVID: 10}) {
			t.Fatalf("cdcp %+v, want channels %+v", st.CDCP, want)
		}
		if out := h.mustCtl("status"); !strings.Contains(out, "10 (bridge SCID 3)") {
			t.Errorf("vswctl status does not show the bridge's SCID:\n%s", out)
		}
		vm2.mustPing(vm1)
		vm4.mustPing(vm3)
		vm2.mustNotPing(vm4, "vm2 is on S-channel 10, vm4 on 20")
		// The bridge's CDCP TLV as it sent it, in GET /v1/lldp and vswctl
		// lldp; the metrics count both S-channels granted.
		ll := h.lldp()
		if c := ll.CDCP; c == nil || c.Bridge == nil || c.Bridge.TLV.Role != "bridge" || !c.Bridge.TLV.SComp || c.Bridge.TLV.ChnCap != 8 ||
			!slices.Equal(c.Bridge.TLV.Pairs, []api.SChannel{{SCID: 1, SVID: 1}, {SCID: 2, SVID: 20}, {SCID: 3, SVID: 10}}) || c.Received == 0 {
			t.Errorf("GET /v1/lldp cdcp %+v", ll.CDCP)
		}
		if out := h.mustCtl("lldp"); !strings.Contains(out, "1/1 2/20 3/10") || !strings.Contains(out, "CDCP TLV") {
			t.Errorf("vswctl lldp does not show the bridge's CDCP TLV:\n%s", out)
		}
		if m := h.metrics(); !strings.Contains(m, `vswitch_cdcp_schannels_granted{uplink="uplink"} 2`) ||
			!strings.Contains(m, `vswitch_cdcp_schannels_held{uplink="uplink"} 0`) {
			t.Errorf("metrics:\n%s", grepLines(m, "vswitch_cdcp"))
		}
	})
}

// --cdcp on without a CDCP bridge (lldpad's place taken by a peer that
// speaks only EVB): S-channel ports stay down with the reason; --cdcp off
// with the same bridge that denies everything: they forward as configured.
func TestCDCPModes(t *testing.T) {
	forEachDatapath(t, func(t *testing.T, dp string) {
		l, hvs := newLab(t, dp, 1)
		h := hvs[0]
		peer := evbPeer(t, l, h, evbbridge.Config{})
		vm1, vm2 := h.addVM(1), h.addVM(2)
		h.start("--lldp-interval", "1s", "--cdcp", "on")
		for _, v := range []*vm{vm1, vm2} {
			h.mustCtl("add-port", v.port, "--vlan", "100", "--svid", "10")
			h.waitState(v.port, "down", 10*time.Second)
		}
		p := h.ports()[0]
		if !strings.Contains(p.StateReason, "no CDCP answer") {
			t.Fatalf("--cdcp on, no CDCP bridge: %+v", p)
		}
		vm2.mustNotPing(vm1, "no S-channel granted")
		if err := peer.Wait(5*time.Second, "the station's CDCP TLV", func(s evbbridge.Snapshot) bool { return s.CDCP != nil }); err != nil {
			t.Fatal(err)
		}

		// The bridge starts answering, and denies: still down, now with
		// the bridge's answer as the reason.
		peer.SetCDCP(&evbbridge.CDCPConfig{Grant: evbbridge.DenyAll})
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(h.ports()[0].StateReason, "not granted by the bridge") {
			if time.Now().After(deadline) {
				t.Fatalf("denied: %+v", h.ports()[0])
			}
			time.Sleep(100 * time.Millisecond)
		}

		// Off: S-channels are static whatever the bridge says.
		if err := h.d.kill(syscall.SIGTERM, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		h.start("--lldp-interval", "1s", "--cdcp", "off")
		for _, v := range []*vm{vm1, vm2} {
			h.waitState(v.port, "up", 10*time.Second)
		}
		vm2.mustPing(vm1)
		if st := h.status(); st.CDCP != nil {
			t.Errorf("--cdcp off reports %+v", st.CDCP)
		}
	})
}

// --cdcp auto (the default) against lldpad, which has no CDCP: the station
// asks, nobody answers, and S-channel ports forward as configured while
// reflective relay is granted as before.
func TestCDCPAutoWithLLDPAD(t *testing.T) {
	forEachDatapath(t, func(t *testing.T, dp string) {
		l, hvs := newLab(t, dp, 1)
		h := hvs[0]
		lldpadBridge(t, l, false, h)
		vm1, vm2 := h.addVM(1), h.addVM(2)
		h.start("--lldp-interval", "1s")
		h.addPort(vm1.port, "--vlan", "100", "--svid", "10")
		h.addPort(vm2.port, "--vlan", "100", "--svid", "10")
		h.waitRelay("granted by lldpad", 15*time.Second, func(st api.Status) bool { return st.Relay.State == "granted" })
		vm2.mustPing(vm1)
		st := h.status()
		if st.CDCP == nil || st.CDCP.Mode != "auto" || st.CDCP.Bridge != "" || len(st.CDCP.Wanted) != 2 || st.CDCP.Wanted[1].SVID != 10 {
			t.Fatalf("cdcp %+v", st.CDCP)
		}
		for _, p := range h.ports() {
			if p.State != "up" || p.StateReason != "" {
				t.Errorf("port %+v", p)
			}
		}
	})
}

// The CDCP bridge goes quiet (it stops sending its CDCP TLV, without a
// goodbye): its answer counts until its TTL runs out (1 s for the test
// bridge), not until vswitchd's next LLDPDU (--lldp-interval, the default
// 30 s here, once the fast start is over). With auto the S-channels are
// static again: the port the bridge denied comes up; with on, every
// S-channel port goes down.
func TestCDCPBridgeGoesQuiet(t *testing.T) {
	forEachDatapath(t, func(t *testing.T, dp string) {
		l, hvs := newLab(t, dp, 1)
		h := hvs[0]
		peer := evbPeer(t, l, h, evbbridge.Config{CDCP: &evbbridge.CDCPConfig{ChnCap: 8, Grant: evbbridge.GrantSVIDs(10)}})
		vm1, vm2 := h.addVM(1), h.addVM(2)
		h.start()
		h.addPort(vm1.port, "--vlan", "100", "--svid", "10")
		h.mustCtl("add-port", vm2.port, "--vlan", "100", "--svid", "20")
		h.waitState(vm2.port, "down", 10*time.Second)
		time.Sleep(5 * time.Second) // the fast start after the last change is over
		peer.SetCDCP(nil)
		h.waitState(vm2.port, "up", 4*time.Second)
		if st := h.status(); st.CDCP == nil || st.CDCP.Bridge != "" {
			t.Fatalf("auto, the bridge quiet: cdcp %+v", st.CDCP)
		}

		if err := h.d.kill(syscall.SIGTERM, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		peer.SetCDCP(&evbbridge.CDCPConfig{ChnCap: 8})
		h.start("--cdcp", "on")
		for _, v := range []*vm{vm1, vm2} {
			h.waitState(v.port, "up", 10*time.Second)
		}
		time.Sleep(5 * time.Second)
		peer.SetCDCP(nil)
		for _, v := range []*vm{vm1, vm2} {
			h.waitState(v.port, "down", 4*time.Second)
		}
		if p := h.ports()[0]; !strings.Contains(p.StateReason, "no CDCP answer") {
			t.Errorf("on, the bridge quiet: %+v", p)
		}
	})
}
