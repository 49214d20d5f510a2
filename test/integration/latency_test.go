package integration

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/vswitch/vswitch/test/topo"
)

// Light-load latency: one probe every 10 ms from vm1 to vm2 through the
// reflective relay, vswitchd on each backend against kernel macvlan in mode
// vepa on the same kind of topology, measured in the same test.
const (
	latencyProbes   = 300
	latencyInterval = 10 * time.Millisecond
)

func TestLatencyLightLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("latency comparison skipped with -short")
	}
	ref := macvlanLatency(t)
	t.Logf("macvlan-vepa: %v", ref)
	forEachDatapath(t, func(t *testing.T, dp string) {
		_, hvs := newLab(t, dp, 1)
		vm1, vm2 := hvs[0].pairOnVLAN100()
		// A frame must not wait for a ring block, a retire timer or a poll
		// timeout: with TPACKET_V3 rings p50 was 50-70x macvlan-vepa's
		// (2-2.6 ms) and p99 3-4 ms (13 ms on AF_XDP), now p50 is 2-4x and
		// p99 2-5x. The bounds are generous (20x, and never below 0.5 ms
		// for p50, 2 ms for p99, as macvlan's own can be a few tens of
		// microseconds) and the best of up to five measurements counts,
		// for each: the default test run shares two cores with other
		// packages' tests (the benchmark smoke test floods, QEMU guests
		// boot), which can stall any process for milliseconds (beside it:
		// p99 0.3-0.6 ms, but in 2 of 7 full runs one backend read
		// 2.4-4.6 ms in three measurements in a row, 9 s); the old rings
		// never came below 1.9 ms p50 in any run.
		bound50 := max(20*ref.P50, 500*time.Microsecond)
		bound99 := max(20*ref.P99, 2*time.Millisecond)
		var best50, best99 time.Duration
		const tries = 5
		for try := 1; try <= tries; try++ {
			got := probeLatency(t, vm1.ns, vm1.ip, vm2.ip)
			t.Logf("vswitchd %s, run %d: %v (p50 %.1fx, p99 %.1fx macvlan-vepa)", dp, try, got,
				float64(got.P50)/float64(ref.P50), float64(got.P99)/float64(ref.P99))
			if try == 1 {
				best50, best99 = got.P50, got.P99
			}
			best50, best99 = min(best50, got.P50), min(best99, got.P99)
			if best50 <= bound50 && best99 <= bound99 {
				return
			}
		}
		if best50 > bound50 {
			t.Errorf("vswitchd %s: light-load p50 %v (best of %d) is above %v (20x macvlan-vepa's %v)", dp, best50, tries, bound50, ref.P50)
		}
		if best99 > bound99 {
			t.Errorf("vswitchd %s: light-load p99 %v (best of %d) is above %v (20x macvlan-vepa's %v)", dp, best99, tries, bound99, ref.P99)
		}
	})
}

// probeLatency measures the round trips of latencyProbes echo requests.
func probeLatency(t *testing.T, ns *topo.NS, src, dst string) topo.Latency {
	t.Helper()
	p, err := topo.NewPinger(ns, src, dst)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.Ping(5 * time.Second); err != nil { // ARP and FDB warm
		t.Fatal(err)
	}
	rtts, lost, err := p.RTTs(latencyProbes, latencyInterval, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if lost > latencyProbes/20 {
		t.Fatalf("%d of %d probes lost", lost, latencyProbes)
	}
	return topo.Summarize(rtts)
}

// macvlanLatency builds the kernel anchor (two macvlans in mode vepa on a
// hypervisor's uplink into a hairpin bridge port) and measures it.
func macvlanLatency(t *testing.T) topo.Latency {
	t.Helper()
	tp := topo.New(t)
	sw, err := tp.NewNS("sw")
	if err != nil {
		t.Fatal(err)
	}
	hv, err := tp.NewNS("hv")
	if err != nil {
		t.Fatal(err)
	}
	if err := topo.VethPair(hv, "uplink", sw, "p1"); err != nil {
		t.Fatal(err)
	}
	if err := topo.Bridge(sw, "br0", topo.Port{Name: "p1", Hairpin: true}); err != nil {
		t.Fatal(err)
	}
	var vms [2]*topo.NS
	for i := range vms {
		if vms[i], err = tp.NewNS(fmt.Sprintf("vm%d", i+1)); err != nil {
			t.Fatal(err)
		}
		if err := topo.MacvlanVEPA(hv, "uplink", vms[i], "eth0"); err != nil {
			t.Fatal(err)
		}
		mac := net.HardwareAddr{0x52, 0x54, 0, 0, 0, byte(i + 1)}
		if err := vms[i].SetDown("eth0"); err != nil {
			t.Fatal(err)
		}
		if err := vms[i].SetMAC("eth0", mac.String()); err != nil {
			t.Fatal(err)
		}
		if err := vms[i].SetUp("eth0"); err != nil {
			t.Fatal(err)
		}
		if err := topo.AddrAdd(vms[i], "eth0", fmt.Sprintf("10.0.0.%d/24", i+1)); err != nil {
			t.Fatal(err)
		}
	}
	return probeLatency(t, vms[0], "10.0.0.1", "10.0.0.2")
}
