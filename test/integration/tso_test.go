package integration

import (
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
	})
}
