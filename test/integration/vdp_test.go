package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vswitch/vswitch/pkg/api"
)

// waitVSIs polls GET /v1/vsis until cond holds.
func (h *hv) waitVSIs(what string, timeout time.Duration, cond func([]api.VSI) bool) []api.VSI {
	t := h.lab.t
	t.Helper()
	c := api.NewClient(h.sock)
	defer c.Close()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		vs, err := c.VSIs(ctx)
		cancel()
		if err == nil && cond(vs) {
			return vs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached after %v: %+v (%v)", what, timeout, vs, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// VDP against lldpad as the bridge: a port with a registered MAC becomes a
// VSI that lldpad acknowledges (associated); deleting the port
// de-associates it. With no EVB bridge the VSI waits.
func TestVDPWithLLDPAD(t *testing.T) {
	forEachDatapath(t, func(t *testing.T, dp string) {
		l, hvs := newLab(t, dp, 1)
		h := hvs[0]
		lp := lldpadBridge(t, l, true, h)
		vm1 := h.addVM(1)
		h.start("--lldp-interval", "1s")
		h.addPort(vm1.port, "--vlan", "100", "--mac", vm1.mac.String())
		h.waitRelay("granted by lldpad", 15*time.Second, func(st api.Status) bool { return st.Relay.State == "granted" })
		vs := h.waitVSIs("VSI associated by lldpad", 15*time.Second, func(vs []api.VSI) bool {
			return len(vs) == 1 && vs[0].State == "associated"
		})
		if v := vs[0]; v.Port != vm1.port || v.MAC != vm1.mac.String() || v.VLAN != 100 || v.MgrID != "vswitchd" {
			t.Errorf("VSI %+v", v)
		}
		if out := h.mustCtl("vsis"); !containsAll(out, vm1.port, vm1.mac.String(), "associated") {
			t.Errorf("vswctl vsis:\n%s", out)
		}
		// The same MAC on a second port (VLAN 200): a second VSI of its own.
		vm2 := h.addVM(2)
		h.addPort(vm2.port, "--vlan", "200", "--mac", vm1.mac.String())
		vs = h.waitVSIs("VSI with two filters associated", 15*time.Second, func(vs []api.VSI) bool {
			return len(vs) == 2 && vs[0].State == "associated" && vs[1].State == "associated"
		})
		if vs[0].UUID == vs[1].UUID || vs[0].Port != vm1.port || vs[0].VLAN != 100 || vs[1].Port != vm2.port || vs[1].VLAN != 200 {
			t.Errorf("VSIs for one MAC on two ports: %+v", vs)
		}
		h.mustCtl("del-port", vm2.port)
		h.waitVSIs("back to one filter", 5*time.Second, func(vs []api.VSI) bool { return len(vs) == 1 && vs[0].VLAN == 100 })
		h.mustCtl("del-port", vm1.port)
		h.waitVSIs("VSI gone", 5*time.Second, func(vs []api.VSI) bool { return len(vs) == 0 })
		// lldpad's debug log shows what its bridge role made of it.
		if log := lp.Output(); !strings.Contains(log, "mgrid:vswitchd") || !strings.Contains(log, "id_fmt:5 ") ||
			!strings.Contains(log, "status:0x40") {
			t.Errorf("lldpad's log does not show our VSI acknowledged (mgrid vswitchd, UUID VSIID, status 0x40)")
		}
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(lp.Output(), "vsi_mode:4") {
			if time.Now().After(deadline) {
				t.Fatal("lldpad never received the DEASSOC (vsi_mode:4) after del-port")
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

func containsAll(s string, subs ...string) bool {
	for _, x := range subs {
		if !strings.Contains(s, x) {
			return false
		}
	}
	return true
}
