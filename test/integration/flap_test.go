package integration

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/test/evbbridge"
)

// A bridge that flips its answers with every LLDPDU, on the wire: the test
// bridge grants and refuses reflective relay, and grants and takes back
// S-channel 10, 1000 times each in about 2 s (each change sent at once).
// vswitchd switches VEPA/VEB and attaches/detaches the S-channel ports a
// bounded number of times (its hold-down: five at once, then once a
// second), its log stays short, GET /v1/lldp counts what it held down, and
// it ends on the bridge's last word: relay refused (VEB: the two VMs on
// S-channel 10 reach each other locally), S-channel 10 granted.
func TestFlappingBridgeIsHeldDown(t *testing.T) {
	forEachDatapath(t, func(t *testing.T, dp string) {
		l, hvs := newLab(t, dp, 1)
		h := hvs[0]
		grantCDCP := &evbbridge.CDCPConfig{ChnCap: 8, Grant: evbbridge.GrantSVIDs(10)}
		denyCDCP := &evbbridge.CDCPConfig{ChnCap: 8, Grant: evbbridge.DenyAll}
		peer := evbPeer(t, l, h, evbbridge.Config{CDCP: grantCDCP})
		vm1, vm2 := h.addVM(1), h.addVM(2)
		h.start("--lldp-interval", "1s")
		h.waitRelay("granted by the peer", 15*time.Second, func(st api.Status) bool { return st.Relay.State == "granted" })
		h.addPort(vm1.port, "--vlan", "100", "--svid", "10")
		h.addPort(vm2.port, "--vlan", "100", "--svid", "10")
		vm2.mustPing(vm1)
		before, err := os.ReadFile(h.logf)
		if err != nil {
			t.Fatal(err)
		}

		grant, refuse := evbbridge.DefaultEVB, evbbridge.DefaultEVB
		refuse.RRCap = false
		start := time.Now()
		for i := range 1000 {
			if i%2 == 0 {
				peer.SetEVB(refuse)
				peer.SetCDCP(denyCDCP)
			} else {
				peer.SetEVB(grant)
				peer.SetCDCP(grantCDCP)
			}
			// Each state a while on the wire (the bridge sends it at once,
			// from its own goroutine).
			time.Sleep(time.Until(start.Add(time.Duration(i+1) * 2 * time.Millisecond)))
		}
		peer.SetEVB(refuse) // the last word: refused, S-channel 10 granted
		took := time.Since(start)
		deadline := time.Now().Add(5 * time.Second)
		for {
			st := h.status()
			up := 0
			for _, p := range h.ports() {
				if p.State == "up" {
					up++
				}
			}
			if st.Relay.State == "refused" && st.Mode == "veb" && up == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("5 s after the flips: relay %s, mode %s, %d ports up; want refused, veb, 2", st.Relay.State, st.Mode, up)
			}
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond)
		vm2.mustPing(vm1)

		b, err := os.ReadFile(h.logf)
		if err != nil {
			t.Fatal(err)
		}
		logged := strings.Split(string(b[len(before):]), "\n")
		count := func(subs ...string) int {
			n := 0
			for _, line := range logged {
				for _, s := range subs {
					if strings.Contains(line, s) {
						n++
						break
					}
				}
			}
			return n
		}
		modes := count("switching VM to VM traffic locally", "back to VEPA forwarding")
		attaches := count("msg=\"port attached\" port="+vm1.port, "msg=\"port detached\" port="+vm1.port)
		loud := count("level=INFO", "level=WARN", "level=ERROR")
		ll := h.lldp()
		holds := map[string]api.HoldDown{}
		for _, x := range ll.HoldDown {
			holds[x.Kind] = x
		}
		sent, _ := peer.LLDPCounts()
		t.Logf("the bridge sent %d LLDPDUs; vswitchd received %d (EVB), %d (CDCP)", sent, ll.LLDP.Received, ll.CDCP.Received)
		t.Logf("1000 flips in %v: relay %+v, cdcp %+v; %d mode switches, %d attaches/detaches of %s, %d log lines at info or above",
			took, holds["relay"], holds["cdcp"], modes, attaches, vm1.port, loud)
		bound := 5 + int(took/time.Second) + 3
		if modes > bound || attaches > bound {
			t.Errorf("%d mode switches, %d attaches/detaches of %s for 1000 flips in %v; want at most %d each", modes, attaches, vm1.port, took, bound)
		}
		if loud > 60 {
			t.Errorf("%d log lines at info or above for 1000 flips", loud)
		}
		for _, kind := range []string{"relay", "cdcp"} {
			x := holds[kind]
			if x.Changes < 100 || x.Changes-x.Suppressed > uint64(bound)+1 {
				t.Errorf("hold_down %s %+v: want many changes (the bridge sent hundreds), few applied", kind, x)
			}
		}
		if m := h.metrics(); !strings.Contains(m, `vswitch_evb_bridge_changes_suppressed_total{kind="relay"}`) {
			t.Errorf("no suppressed changes series:\n%s", grepLines(m, "vswitch_evb_bridge"))
		}
	})
}
