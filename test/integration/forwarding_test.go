package integration

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/vswitch/vswitch/test/topo"
)

// Two VMs on VLAN 100 on one hypervisor reach each other only through the
// bridge's reflective relay: with hairpin off the ping fails (VEPA switches
// nothing locally); in VEB mode it works without hairpin.
func TestVEPANeedsReflectiveRelay(t *testing.T) {
	forEachDatapath(t, func(t *testing.T, dp string) {
		l, hvs := newLab(t, dp, 1)
		h := hvs[0]
		vm1, vm2 := h.pairOnVLAN100()
		vm2.mustPing(vm1)

		if err := topo.Hairpin(l.sw, h.swPort, false); err != nil {
			t.Fatal(err)
		}
		// ARP entries are cached on both sides: only the relay is missing.
		vm1.mustNotPing(vm2, "hairpin is off and VEPA must not switch locally")

		if err := topo.Hairpin(l.sw, h.swPort, true); err != nil {
			t.Fatal(err)
		}
		vm1.mustPing(vm2)
	})
}

func TestVEBWorksWithoutHairpin(t *testing.T) {
	forEachDatapath(t, func(t *testing.T, dp string) {
		l, hvs := newLab(t, dp, 1)
		h := hvs[0]
		if err := topo.Hairpin(l.sw, h.swPort, false); err != nil {
			t.Fatal(err)
		}
		vm1, vm2 := h.pairOnVLAN100("--mode", "veb")
		vm2.mustPing(vm1)
	})
}

// vm3 on VLAN 200 cannot reach vm1 on VLAN 100, and what the hypervisor
// sends to the bridge carries 802.1Q tags with the port's VID and PCP.
func TestVLANIsolationAndTags(t *testing.T) {
	forEachDatapath(t, func(t *testing.T, dp string) {
		l, hvs := newLab(t, dp, 1)
		h := hvs[0]
		vm1, vm2, vm3 := h.addVM(1), h.addVM(2), h.addVM(3)
		h.start()
		capt, err := l.sw.Capture(h.swPort)
		if err != nil {
			t.Fatal(err)
		}
		vm1Cap, err := vm1.ns.Capture("eth0", topo.WithOutgoing(false))
		if err != nil {
			t.Fatal(err)
		}
		h.addPort(vm1.port, "--vlan", "100", "--pcp", "5")
		h.addPort(vm2.port, "--vlan", "100")
		h.addPort(vm3.port, "--vlan", "200", "--pcp", "3")

		vm1.mustPing(vm2)
		vm3.mustNotPing(vm1, "vm3 is on VLAN 200, vm1 on VLAN 100")

		frames := capt.Stop()
		want := map[string]struct{ vid, pcp uint16 }{
			vm1.mac.String(): {100, 5},
			vm2.mac.String(): {100, 0},
			vm3.mac.String(): {200, 3},
		}
		seen := map[string]int{}
		for _, f := range frames {
			if f.Outgoing || len(f.Data) < 14 {
				continue // reflected by the bridge: counted once, on the way in
			}
			src := net.HardwareAddr(f.Data[6:12]).String()
			w, ok := want[src]
			if !ok {
				continue
			}
			tpid, tci, tagged := topo.OuterTag(f.Data)
			if !tagged || tpid != topo.TPID8021Q {
				t.Errorf("frame from %s on the switch side is not 802.1Q tagged (tpid %#x): % x", src, tpid, head(f.Data))
				continue
			}
			if vid, pcp := tci&0x0fff, tci>>13; vid != w.vid || pcp != w.pcp || tci&0x1000 != 0 {
				t.Errorf("frame from %s tagged VID %d PCP %d DEI %d, want VID %d PCP %d DEI 0", src, vid, pcp, tci>>12&1, w.vid, w.pcp)
			}
			seen[src]++
		}
		for mac := range want {
			if seen[mac] == 0 {
				t.Errorf("no frame from %s seen on the switch side (%d frames captured)", mac, len(frames))
			}
		}
		for _, f := range vm1Cap.Stop() {
			if len(f.Data) >= 12 && bytes.Equal(f.Data[6:12], vm3.mac) {
				t.Errorf("vm1 (VLAN 100) received a frame from vm3 (VLAN 200): % x", head(f.Data))
			}
		}
	})
}

// A broadcast from vm1 reflected by the bridge reaches vm2 but not vm1, and
// every reflected copy is counted as a `reflection` drop on vnet1.
func TestBroadcastReflectionFilter(t *testing.T) {
	forEachDatapath(t, func(t *testing.T, dp string) {
		_, hvs := newLab(t, dp, 1)
		h := hvs[0]
		vm1, vm2 := h.addVM(1), h.addVM(2)
		h.start()
		h.addPort(vm1.port, "--vlan", "100")
		h.addPort(vm2.port, "--vlan", "100")
		c1, err := vm1.ns.PacketConn("eth0") // ignores what vm1 itself sends
		if err != nil {
			t.Fatal(err)
		}
		c2, err := vm2.ns.PacketConn("eth0")
		if err != nil {
			t.Fatal(err)
		}
		before := h.drops(vm1.port, "reflection")
		const n = 20
		mark := marker(t, "bcast")
		frame := topo.BuildEth(topo.BroadcastMAC(), vm1.mac, etherTypeTest, mark)
		for i := 0; i < n; i++ {
			if err := c1.WriteFrame(frame); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Millisecond)
		}
		got2 := make(chan int, 1)
		go func() { got2 <- countFrames(c2, mark, 2*time.Second) }()
		got1 := countFrames(c1, mark, 2*time.Second)
		if g := <-got2; g != n {
			t.Errorf("vm2 received %d of vm1's %d broadcasts, want all", g, n)
		}
		if got1 != 0 {
			t.Errorf("vm1 received %d of its own %d broadcasts back, want 0 (VEPA reflection filter)", got1, n)
		}
		after := h.waitDrops(vm1.port, "reflection", before+n, 3*time.Second)
		if after-before != n {
			t.Errorf("reflection drops on %s went %d -> %d, want +%d", vm1.port, before, after, n)
		}
	})
}

// A tagged frame from an access port and a frame with a spoofed source MAC
// from a port with registered MACs are dropped, counted under the right
// reason, and never reach the switch.
func TestTaggedAndSpoofedDropped(t *testing.T) {
	forEachDatapath(t, func(t *testing.T, dp string) {
		l, hvs := newLab(t, dp, 1)
		h := hvs[0]
		vm1, vm2 := h.addVM(1), h.addVM(2)
		h.start()
		h.addPort(vm1.port, "--vlan", "100")
		h.addPort(vm2.port, "--vlan", "100", "--mac", vm2.mac.String())
		vm2.mustPing(vm1) // the registered MAC itself passes
		capt, err := l.sw.Capture(h.swPort)
		if err != nil {
			t.Fatal(err)
		}
		c1, err := vm1.ns.PacketConn("eth0")
		if err != nil {
			t.Fatal(err)
		}
		c2, err := vm2.ns.PacketConn("eth0")
		if err != nil {
			t.Fatal(err)
		}
		tagBefore := h.drops(vm1.port, "tagged_on_access")
		spoofBefore := h.drops(vm2.port, "spoofed_src")
		const n = 5
		tagMark, spoofMark := marker(t, "tagged"), marker(t, "spoofed")
		dst := vm2.mac
		// 802.1Q VID 200 from an access port on VLAN 100: VLAN hopping.
		tagged := topo.PushTag(topo.BuildUDPv4(dst, vm1.mac, net.ParseIP(vm1.ip), net.ParseIP(vm2.ip), 4000, 4000, tagMark), topo.TPID8021Q, 200)
		spoofMAC := topo.MustMAC("52:54:00:66:66:66")
		spoofed := topo.BuildUDPv4(vm1.mac, spoofMAC, net.ParseIP(vm2.ip), net.ParseIP(vm1.ip), 4000, 4000, spoofMark)
		for i := 0; i < n; i++ {
			if err := c1.WriteFrame(tagged); err != nil {
				t.Fatal(err)
			}
			if err := c2.WriteFrame(spoofed); err != nil {
				t.Fatal(err)
			}
		}
		if got := h.waitDrops(vm1.port, "tagged_on_access", tagBefore+n, 3*time.Second); got-tagBefore != n {
			t.Errorf("tagged_on_access drops on %s went %d -> %d, want +%d", vm1.port, tagBefore, got, n)
		}
		if got := h.waitDrops(vm2.port, "spoofed_src", spoofBefore+n, 3*time.Second); got-spoofBefore != n {
			t.Errorf("spoofed_src drops on %s went %d -> %d, want +%d", vm2.port, spoofBefore, got, n)
		}
		time.Sleep(200 * time.Millisecond)
		frames := capt.Stop()
		if fs := framesWith(frames, tagMark); len(fs) != 0 {
			t.Errorf("%d tagged frames from access port %s reached the switch: % x", len(fs), vm1.port, head(fs[0].Data))
		}
		if fs := framesWith(frames, spoofMark); len(fs) != 0 {
			t.Errorf("%d spoofed frames from %s reached the switch: % x", len(fs), vm2.port, head(fs[0].Data))
		}
		for _, f := range frames {
			if len(f.Data) >= 12 && bytes.Equal(f.Data[6:12], spoofMAC) {
				t.Errorf("a frame with the spoofed source MAC reached the switch: % x", head(f.Data))
			}
		}
		// Nothing else was harmed.
		vm1.mustPing(vm2)
	})
}

// Two hypervisors on one bridge: VMs in VLAN 100 on different hosts reach
// each other, a VM in VLAN 200 does not.
func TestTwoHypervisors(t *testing.T) {
	forEachDatapath(t, func(t *testing.T, dp string) {
		_, hvs := newLab(t, dp, 2)
		hv1, hv2 := hvs[0], hvs[1]
		vm1, vm3 := hv1.addVM(1), hv1.addVM(3)
		vm2 := hv2.addVM(2)
		hv1.start()
		hv2.start()
		hv1.addPort(vm1.port, "--vlan", "100")
		hv1.addPort(vm3.port, "--vlan", "200")
		hv2.addPort(vm2.port, "--vlan", "100")
		vm1.mustPing(vm2)
		vm2.mustPing(vm1)
		vm3.mustNotPing(vm2, "vm3 is on VLAN 200, vm2 on VLAN 100 on the other hypervisor")
	})
}

// A real tap device, driven by the test through /dev/net/tun, exchanges ARP
// and ICMP with a veth VM on the same VLAN.
func TestTapVM(t *testing.T) {
	forEachDatapath(t, func(t *testing.T, dp string) {
		_, hvs := newLab(t, dp, 1)
		h := hvs[0]
		vm1 := h.addVM(1)
		tap, err := topo.Tap(h.ns, "vnet9")
		if err != nil {
			t.Fatal(err)
		}
		h.start()
		h.addPort(vm1.port, "--vlan", "100")
		h.addPort("vnet9", "--vlan", "100")
		myMAC := topo.MustMAC("52:54:00:00:00:09")
		myIP, vmIP := net.ParseIP("10.0.0.9").To4(), net.ParseIP(vm1.ip).To4()

		// ARP: who has 10.0.0.1? (resend: the first may race the attach)
		var vmMAC net.HardwareAddr
		for try := 0; try < 5 && vmMAC == nil; try++ {
			if _, err := tap.Write(buildARPRequest(myMAC, myIP, vmIP)); err != nil {
				t.Fatalf("write ARP request to tap: %v", err)
			}
			_, err := readTap(tap, time.Second, func(f []byte) bool {
				mac, ip, ok := parseARPReply(f)
				if ok && ip.Equal(vmIP) && bytes.Equal(f[0:6], myMAC) {
					vmMAC = mac
					return true
				}
				return false
			})
			if err != nil {
				t.Logf("ARP try %d: %v", try, err)
			}
		}
		if vmMAC == nil {
			t.Fatalf("no ARP reply from %s on the tap", vm1.ip)
		}
		if !bytes.Equal(vmMAC, vm1.mac) {
			t.Fatalf("ARP reply says %s is at %s, want %s", vm1.ip, vmMAC, vm1.mac)
		}
		// ICMP echo.
		const id = 0x7a9
		for seq := uint16(1); seq <= 3; seq++ {
			if _, err := tap.Write(buildEcho(vmMAC, myMAC, myIP, vmIP, id, seq, []byte("vswitch tap test"))); err != nil {
				t.Fatalf("write echo request to tap: %v", err)
			}
			f, err := readTap(tap, 3*time.Second, func(f []byte) bool { return isEchoReply(f, vmIP, id, seq) })
			if err != nil {
				t.Fatalf("echo %d: no reply from %s on the tap: %v", seq, vm1.ip, err)
			}
			if _, _, tagged := topo.OuterTag(f); tagged {
				t.Errorf("frame delivered to the tap (an access port) still carries a tag: % x", head(f))
			}
			if !bytes.Equal(f[6:12], vm1.mac) || !bytes.Equal(f[0:6], myMAC) {
				t.Errorf("echo reply %s -> %s, want %s -> %s", net.HardwareAddr(f[6:12]), net.HardwareAddr(f[0:6]), vm1.mac, myMAC)
			}
		}
		// And the port counters saw it.
		for _, p := range h.ports() {
			if p.Name == "vnet9" && (p.RxPackets == 0 || p.TxPackets == 0) {
				t.Errorf("vnet9 counters rx %d tx %d, want both > 0", p.RxPackets, p.TxPackets)
			}
		}
	})
}

// head returns the first bytes of a frame for error messages.
func head(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

// With the kernel's default TX VLAN offload on the bridge port, the tag of a
// frame the bridge sends to the hypervisor crosses the veth in skb metadata,
// as it arrives from a physical NIC with RX VLAN offload. Each backend must
// still see the VID: AF_PACKET from the ring header, AF_XDP from the XDP
// metadata kfunc (bpf_xdp_metadata_rx_vlan_tag) or it sees the frame
// untagged and drops it as unknown_vlan.
func TestTagsOutOfBand(t *testing.T) {
	forEachDatapath(t, func(t *testing.T, dp string) {
		_, hvs := newLabWith(t, dp, 1, labConfig{keepTxVLAN: true})
		h := hvs[0]
		vm1, vm2 := h.pairOnVLAN100()
		vm2.mustPing(vm1)
		if st := h.stats(); st.Uplink.Drops["unknown_vlan"] != 0 {
			t.Errorf("uplink dropped %d frames as unknown_vlan: tags in skb metadata were lost", st.Uplink.Drops["unknown_vlan"])
		}
	})
}
