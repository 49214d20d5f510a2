package datapath_test

import (
	"maps"
	"testing"
	"time"

	"github.com/vswitch/vswitch/pkg/datapath"
)

// The custom counters of a port's queues (its tap and its uplink TX queue)
// reach PortStatus, those of the uplink's own queues UplinkCounters, and
// both keep their totals when the queues close and open again. queuetest
// counts rx_batches and tx_batches.
func TestBackendCounters(t *testing.T) {
	r := newRig(t, datapath.ModeVEPA, access("vnet1", 100, 0))
	vm, up := r.be.Iface("vnet1"), r.be.Iface("up0")
	port := func() map[string]uint64 {
		t.Helper()
		for _, p := range r.sw.Ports() {
			if p.Config.Name == "vnet1" {
				return p.Counters.Backend
			}
		}
		t.Fatal("no port vnet1")
		return nil
	}
	check := func(what string, got, want map[string]uint64) {
		t.Helper()
		if !maps.Equal(got, want) {
			t.Errorf("%s: backend counters %v, want %v", what, got, want)
		}
	}
	// One frame each way, waiting for each: one batch per Recv and Send.
	roundTrip := func() {
		t.Helper()
		vm.Inject(eth(macR, mac1))
		if got := up.Wait(1, time.Second); len(got) != 1 {
			t.Fatalf("uplink got %d frames, want 1", len(got))
		}
		up.Inject(eth(mac1, macR, ctag(0, 100)))
		if got := vm.Wait(1, time.Second); len(got) != 1 {
			t.Fatalf("vnet1 got %d frames, want 1", len(got))
		}
	}

	check("port before traffic", port(), map[string]uint64{"rx_batches": 0, "tx_batches": 0})
	roundTrip()
	// rx: the tap's Recv; tx: the uplink TX queue's Send and the tap's.
	check("port", port(), map[string]uint64{"rx_batches": 1, "tx_batches": 2})
	check("uplink", r.sw.UplinkCounters().Backend, map[string]uint64{"rx_batches": 1, "tx_batches": 0})

	r.sw.Detach("vnet1")
	check("detached port", port(), map[string]uint64{"rx_batches": 1, "tx_batches": 2})
	if err := r.sw.Attach("vnet1"); err != nil {
		t.Fatal(err)
	}
	if err := r.sw.RestartUplink(); err != nil {
		t.Fatal(err)
	}
	check("uplink after restart", r.sw.UplinkCounters().Backend, map[string]uint64{"rx_batches": 1, "tx_batches": 0})
	roundTrip()
	check("port reattached", port(), map[string]uint64{"rx_batches": 2, "tx_batches": 4})
	check("uplink restarted", r.sw.UplinkCounters().Backend, map[string]uint64{"rx_batches": 2, "tx_batches": 0})
}
