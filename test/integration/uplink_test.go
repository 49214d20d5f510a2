package integration

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/vepa"
	"github.com/vswitch/vswitch/test/topo"
)

// The uplink is deleted while the daemon runs (a NIC unbound, a bond torn
// down): the daemon keeps running and its ports; when an uplink of that
// name comes back, it reopens its queues on it and traffic resumes, also
// for a port whose tap was replaced while the uplink was gone.
func TestUplinkRecreate(t *testing.T) {
	forEachDatapath(t, func(t *testing.T, dp string) {
		l, hvs := newLab(t, dp, 1)
		h := hvs[0]
		vm1, vm2 := h.pairOnVLAN100()

		if err := h.ns.DelLink("uplink"); err != nil { // takes its bridge-side peer along
			t.Fatal(err)
		}
		vm1.mustNotPing(vm2, "the uplink is gone")
		h.alive()
		st := h.status()
		if st.UplinkState != "absent" {
			t.Errorf("status uplink_state %q with the uplink deleted, want absent", st.UplinkState)
		}
		// vm2's tap is replaced while the uplink is gone: it cannot be
		// attached now, and must be once the uplink is back.
		if err := h.ns.DelLink(vm2.port); err != nil {
			t.Fatal(err)
		}
		vm2.plug()
		time.Sleep(200 * time.Millisecond)

		if err := topo.VethPair(h.ns, "uplink", l.sw, h.swPort); err != nil {
			t.Fatal(err)
		}
		txVLANOff(t, l.sw, h.swPort)
		if err := topo.AddBridgePort(l.sw, "br0", topo.Port{Name: h.swPort, Hairpin: true}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for h.status().UplinkState != "up" && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		vm1.mustPing(vm2)
		vm2.mustPing(vm1)
		if log := h.logTail(200); !strings.Contains(log, "uplink is back") {
			t.Errorf("daemon log does not say the uplink came back:\n%s", log)
		}

		// The control plane follows the new uplink too (the datapath
		// carries it): the EVB station, which takes the new interface's
		// MAC and announces it at once, is heard by a bridge on the new
		// port, and the bridge's answer comes back in.
		br := startEVBBridge(t, l.sw, h.swPort, true)
		h.waitRelay("relay granted over the new uplink", 10*time.Second, func(st api.Status) bool { return st.Relay.State == "granted" })
		if e, n := br.lastStation(); n == 0 || e.StationStatus&vepa.StationRRREQ == 0 {
			t.Errorf("bridge heard %d station TLVs over the new uplink, last %+v", n, e)
		}
	})
}

// status returns `vswctl -o json status`.
func (h *hv) status() api.Status {
	t := h.lab.t
	t.Helper()
	out := h.mustCtl("-o", "json", "status")
	var st api.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status JSON: %v\n%s", err, out)
	}
	return st
}
