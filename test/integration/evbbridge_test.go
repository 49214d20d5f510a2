package integration

import (
	"testing"
	"time"

	"github.com/vswitch/vswitch/internal/uuid"
	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/test/evbbridge"
)

// evbPeer runs the test bridge peer (test/evbbridge) on h's port of the
// switch namespace: LLDP every 200 ms, the EVB TLV of cfg (DefaultEVB
// when cfg.EVB is zero). It stops before the lab is taken down.
func evbPeer(t *testing.T, l *lab, h *hv, cfg evbbridge.Config) *evbbridge.Port {
	t.Helper()
	if cfg.EVB == (evbbridge.EVBConfig{}) {
		cfg.EVB = evbbridge.DefaultEVB
	}
	if cfg.Interval == 0 {
		cfg.Interval = 200 * time.Millisecond
	}
	if cfg.Logf == nil {
		cfg.Logf = t.Logf
	}
	p, err := evbbridge.Attach(l.sw, h.swPort, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

// VDP against the test bridge: the VSI of a port is associated (the
// peer holds it with the port's MAC and VLAN), kept alive, and
// de-associated when the port goes; a VSI the bridge refuses is failed
// with the bridge's reason.
func TestVDPWithEVBBridge(t *testing.T) {
	forEachDatapath(t, func(t *testing.T, dp string) {
		l, hvs := newLab(t, dp, 1)
		h := hvs[0]
		peer := evbPeer(t, l, h, evbbridge.Config{})
		vm1, vm2 := h.addVM(1), h.addVM(2)
		h.start("--lldp-interval", "1s")
		h.waitRelay("granted by the peer", 15*time.Second, func(st api.Status) bool { return st.Relay.State == "granted" })
		h.addPort(vm1.port, "--vlan", "100", "--mac", vm1.mac.String())
		vs := h.waitVSIs("VSI associated by the peer", 15*time.Second, func(vs []api.VSI) bool {
			return len(vs) == 1 && vs[0].State == "associated"
		})
		err := peer.Wait(5*time.Second, "the VSI held by the peer", func(s evbbridge.Snapshot) bool {
			return len(s.VSIs) == 1 && s.VSIs[0].VSI.Mode == evbbridge.Assoc && s.VSIs[0].VSI.FilterFormat == 2 &&
				len(s.VSIs[0].VSI.Filters) == 1 && s.VSIs[0].VSI.Filters[0].VID == 100 &&
				s.VSIs[0].VSI.Filters[0].MAC.String() == vm1.mac.String() && s.VSIs[0].SVID == 0
		})
		if err != nil {
			t.Fatalf("%v: %+v", err, peer.VSIs())
		}
		id := peer.VSIs()[0].VSI.ID
		if got := vs[0].UUID; got != uuid.UUID(id).String() {
			t.Errorf("vswitchd's VSI %s, the peer's %s", got, uuid.UUID(id).String())
		}

		// The peer refuses the second VM's VSI: failed, with the reason.
		const refused = "0b6d9a3c-5e55-4f4e-9f11-2f0d5a6b7c8d"
		rid, err := uuid.Parse(refused)
		if err != nil {
			t.Fatal(err)
		}
		peer.SetAnswer(rid, evbbridge.Answer{Reason: evbbridge.ReasonResources})
		h.addPort(vm2.port, "--vlan", "200", "--mac", vm2.mac.String(), "--instance-id", refused)
		h.waitVSIs("second VSI failed", 15*time.Second, func(vs []api.VSI) bool {
			return len(vs) == 2 && vs[1].Port == vm2.port && vs[1].State == "failed" && vs[1].Reason == "insufficient resources"
		})

		// Keep-alives: the station repeats the ASSOC (RKA 20 is 10.5 s;
		// one repeat is enough to see that it comes).
		if err := peer.Wait(15*time.Second, "a keep-alive", func(evbbridge.Snapshot) bool {
			return len(peer.Arrivals(id, evbbridge.Assoc)) >= 2
		}); err != nil {
			t.Fatal(err)
		}
		if vs := h.waitVSIs("first VSI still associated", time.Second, func(vs []api.VSI) bool { return len(vs) == 2 }); vs[0].State != "associated" {
			t.Errorf("after its keep-alive: %+v", vs[0])
		}
		h.mustCtl("del-port", vm2.port)
		h.mustCtl("del-port", vm1.port)
		if err := peer.Wait(5*time.Second, "the VSI de-associated", func(s evbbridge.Snapshot) bool { return len(s.VSIs) == 0 }); err != nil {
			t.Fatal(err)
		}
		if st := peer.ECPStats(); st.Requests < 3 || st.Acked < 2 || st.Bad != 0 {
			t.Errorf("peer's ECP counters %+v", st)
		}
	})
}
