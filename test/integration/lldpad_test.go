package integration

import (
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/test/topo"
)

// Interoperability with lldpad as the bridge: it grants reflective relay
// to vswitchd's request and shows, in what it received, that vswitchd
// asked (RRREQ) and understood (RRSTAT yes). Without the capability it
// refuses and vswitchd falls back to VEB.
func TestEVBWithLLDPAD(t *testing.T) {
	forEachDatapath(t, func(t *testing.T, dp string) {
		l, hvs := newLab(t, dp, 1)
		h := hvs[0]
		lp := lldpadBridge(t, l, false, h)
		mac, err := l.sw.MAC(h.swPort)
		if err != nil {
			t.Fatal(err)
		}
		vm1, vm2 := h.addVM(1), h.addVM(2)
		h.start("--lldp-interval", "1s")
		h.addPort(vm1.port, "--vlan", "100")
		h.addPort(vm2.port, "--vlan", "100")

		st := h.waitRelay("granted by lldpad", 15*time.Second, func(st api.Status) bool { return st.Relay.State == "granted" })
		if st.Relay.Peer != mac.String() || st.Mode != "vepa" {
			t.Errorf("granted: peer %s mode %s, want %s vepa", st.Relay.Peer, st.Mode, mac)
		}
		vm1.mustPing(vm2)
		// lldpad's view of the station: SGID (it takes group IDs in VDP),
		// RRREQ and RRSTAT yes (0xd).
		deadline := time.Now().Add(10 * time.Second)
		for {
			out, err := lp.ReceivedEVB(h.swPort)
			if err == nil && strings.Contains(out, "station:sgid,rrreq,rrstat(0xd)") && strings.Contains(out, "mode:station") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("lldpad never saw RRREQ with RRSTAT yes from vswitchd:\n%s (%v)", out, err)
			}
			time.Sleep(200 * time.Millisecond)
		}

		// Take the capability away and restart vswitchd: its first LLDPDU
		// (RRSTAT unknown again) makes lldpad answer with the new policy.
		if err := lp.SetRRCAP(h.swPort, false); err != nil {
			t.Fatal(err)
		}
		if err := h.d.kill(syscall.SIGTERM, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if err := topo.Hairpin(l.sw, h.swPort, false); err != nil {
			t.Fatal(err)
		}
		h.start("--lldp-interval", "1s")
		st = h.waitRelay("refused by lldpad", 15*time.Second, func(st api.Status) bool { return st.Relay.State == "refused" })
		if st.Mode != "veb" || st.ConfiguredMode != "vepa" {
			t.Errorf("refused: mode %s configured %s, want veb vepa", st.Mode, st.ConfiguredMode)
		}
		vm2.mustPing(vm1) // switched locally, the bridge reflects nothing now

		// lldpad stops and says so with a shutdown LLDPDU (TTL 0, no EVB
		// TLV): the peer is gone at once, not after its TTL (120 s).
		_ = lp.Stop()
		st = h.waitRelay("unknown after lldpad's shutdown", 5*time.Second, func(st api.Status) bool { return st.Relay.State == "unknown" })
		if st.Relay.Peer != "" || st.Mode != "vepa" {
			t.Errorf("after lldpad's shutdown: mode %s relay %+v, want vepa and no peer", st.Mode, st.Relay)
		}
	})
}

// lldpadBridge runs lldpad on the lab's switch as an EVB bridge with the
// reflective relay capability on the switch ports of hvs (the test skips
// when lldpad is not installed). With vdp it is restarted once
// configured, since lldpad takes its VDP bridge role from the saved
// configuration at start. The bridge gets STP on, or it would forward the
// station's LLDPDUs itself (topo.BridgeSTP). A failing test shows the tail
// of lldpad's log.
func lldpadBridge(t *testing.T, l *lab, vdp bool, hvs ...*hv) *topo.LLDPAD {
	t.Helper()
	if err := topo.BridgeSTP(l.sw, "br0", true); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	lp, err := topo.StartLLDPAD(l.sw, dir)
	if errors.Is(err, topo.ErrNoLLDPAD) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hvs {
		if err := lp.EVBBridge(h.swPort, true); err != nil {
			t.Fatal(err)
		}
	}
	if vdp {
		_ = lp.Stop()
		if lp, err = topo.StartLLDPAD(l.sw, dir); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			log := lp.Output()
			if len(log) > 12000 {
				log = log[len(log)-12000:]
			}
			t.Logf("lldpad log tail:\n%s", log)
		}
	})
	return lp
}
