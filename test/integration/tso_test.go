package integration

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// Legacy ethtool set commands for the offloads TSO depends on.
const (
	ethtoolSSG  = 0x19
	ethtoolSTSO = 0x1f
	ethtoolSGSO = 0x24
)

// With TSO/GSO and TX checksum offload left on in the VMs (the veth and
// virtio default), kernel TCP hands its veth GSO super-frames of up to
// 64 KiB. The afpacket port queue gets the GSO metadata (PACKET_VNET_HDR)
// and cuts them into MTU-sized segments with complete checksums; without
// that they are dropped as oversize and bulk TCP stalls.
func TestTSOTCPEcho(t *testing.T) {
	forEachDatapath(t, func(t *testing.T, dp string) {
		if portBackend(dp) == "afxdp" {
			t.Skip("afxdp-xsk (VM ports on AF_XDP): an XSK receives no GSO metadata (no virtio_net_hdr, no gso_size in the RX descriptor or metadata kfuncs), so super-frames cannot be segmented; VMs on afxdp ports need TSO/GSO and TX checksum offload off")
		}
		_, hvs := newLab(t, dp, 1)
		h := hvs[0]
		vm1, vm2 := h.addVM(1), h.addVM(2)
		for _, v := range []*vm{vm1, vm2} {
			// addVM turned every offload off; restore the defaults.
			for _, cmd := range []uint32{ethtoolSTXCSUM, ethtoolSSG, ethtoolSTSO, ethtoolSGSO} {
				if _, err := ethtoolIoctl(v.ns, "eth0", cmd, 1); err != nil {
					t.Fatal(err)
				}
			}
			for _, f := range []struct {
				name string
				get  uint32
			}{{"tx-checksumming", ethtoolGTXCSUM}, {"tso", ethtoolGTSO}, {"gso", ethtoolGGSO}} {
				on, err := ethtoolGet(v.ns, "eth0", f.get)
				if err != nil {
					t.Fatal(err)
				}
				if !on {
					t.Fatalf("%s eth0: %s is off, want on", v.ns, f.name)
				}
			}
		}
		h.start()
		h.addPort(vm1.port, "--vlan", "100")
		h.addPort(vm2.port, "--vlan", "100")
		vm1.mustPing(vm2)
		vm2.mustPing(vm1)

		start := time.Now()
		const size = 1 << 20
		tcpEcho(t, vm1, vm2, size, 20*time.Second)
		t.Logf("1 MiB echoed in %v", time.Since(start))
		if on, err := ethtoolGet(vm1.ns, "eth0", ethtoolGTSO); err != nil || !on {
			t.Fatalf("vm1 eth0 tso on = %v (%v), want on", on, err)
		}
		for _, p := range h.ports() {
			if p.Name == vm1.port && p.RxPackets < size/1500 {
				t.Errorf("%s rx_packets %d: the transfer did not go through vswitchd as MTU-sized frames", p.Name, p.RxPackets)
			}
		}
		if n := h.drops(vm1.port, "malformed"); n != 0 {
			t.Errorf("%s: %d frames dropped as malformed (oversize super-frames?)", vm1.port, n)
		}

		// The segmentation shows in the port's backend counters, in the
		// API and in /metrics; the uplink reports its own backend's.
		st := h.stats()
		var port map[string]uint64
		for _, p := range st.Ports {
			if p.Name == vm1.port {
				port = p.Backend
			}
		}
		t.Logf("%s backend counters %v; uplink %v", vm1.port, port, st.Uplink.Backend)
		if port["gso_frames"] == 0 || port["gso_segments"] <= port["gso_frames"] {
			t.Errorf("%s backend counters %v: want gso_segments > gso_frames > 0 after a TSO flow", vm1.port, port)
		}
		uplinkKey := map[string]string{"afpacket": "ring_freezes", "afxdp": "xsk_rx_dropped"}[uplinkBackend(dp)]
		if _, ok := st.Uplink.Backend[uplinkKey]; !ok {
			t.Errorf("uplink backend counters %v lack %s", st.Uplink.Backend, uplinkKey)
		}
		m := h.metrics()
		if v, ok := metricValue(m, "vswitch_port_backend_total", `counter="gso_segments",port="`+vm1.port+`"`); !ok || v < float64(port["gso_segments"]) {
			t.Errorf("/metrics vswitch_port_backend_total gso_segments of %s = %v (found %v), want >= %d", vm1.port, v, ok, port["gso_segments"])
		}
		if _, ok := metricValue(m, "vswitch_uplink_backend_total", `counter="`+uplinkKey+`",uplink="`+st.Uplink.Name+`"`); !ok {
			t.Errorf("/metrics has no vswitch_uplink_backend_total for %s", uplinkKey)
		}
	})
}

// metricValue finds the sample name{labels} (labels as Prometheus writes
// them: sorted by name, comma separated) in a /metrics text exposition.
func metricValue(metrics, name, labels string) (float64, bool) {
	prefix := name + "{" + labels + "} "
	for _, l := range strings.Split(metrics, "\n") {
		if v, ok := strings.CutPrefix(l, prefix); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f, err == nil
		}
	}
	return 0, false
}
