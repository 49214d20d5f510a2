package integration

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/test/topo"
)

// Broken frames from a VM are dropped as `malformed` (and nothing else), and
// the daemon keeps running and forwarding afterwards.
//
// What reaches the datapath depends on the kernel and the backend, so each
// case measures it: runts shorter than 14 bytes are refused by a packet
// socket on veth (EINVAL) and by tun; a frame whose VLAN tag is cut short is
// dropped by the receive path's skb_vlan_untag before any packet socket sees
// it (so AF_PACKET never gets it), while XDP runs earlier and hands it to
// AF_XDP. For AF_PACKET the expected count is what a packet socket on the
// hypervisor side saw; for AF_XDP it is every frame sent.
func TestMalformedFrames(t *testing.T) {
	forEachDatapath(t, func(t *testing.T, dp string) {
		_, hvs := newLab(t, dp, 1)
		h := hvs[0]
		vm1, vm2 := h.addVM(1), h.addVM(2)
		// Jumbo frames: both ends of vm1's veth take 9000 bytes, vswitchd's
		// VM port MTU stays 1500. Set before the daemon attaches (XDP on veth
		// limits the MTU while a program is attached).
		if err := vm1.ns.SetMTU("eth0", 9000); err != nil {
			t.Fatal(err)
		}
		if err := h.ns.SetMTU(vm1.port, 9000); err != nil {
			t.Fatal(err)
		}
		tap, err := topo.Tap(h.ns, "vnet9")
		if err != nil {
			t.Fatal(err)
		}
		h.start()
		// A trunk port, so that tagged frames are allowed in principle and
		// `malformed` (not tagged_on_access) is what applies to broken tags.
		h.addPort(vm1.port, "--trunk", "100", "--native-vlan", "100")
		h.addPort(vm2.port, "--vlan", "100")
		h.addPort("vnet9", "--vlan", "100")
		vm1.mustPing(vm2)

		src, dst := vm1.mac, vm2.mac
		udp := func(size int, kind string) []byte {
			p := make([]byte, size)
			copy(p, marker(t, kind))
			return topo.BuildUDPv4(dst, src, net.ParseIP(vm1.ip), net.ParseIP(vm2.ip), 5000, 5000, p)
		}
		hdr := func(et uint16, rest ...byte) []byte {
			b := append(append(append([]byte{}, dst...), src...), byte(et>>8), byte(et))
			return append(b, rest...)
		}
		cases := []struct {
			name    string
			frame   []byte
			mustGet bool // the kernel must deliver it to the datapath
		}{
			{"runt 10 bytes", append(append([]byte{}, dst...), src[:4]...), false},
			{"runt 13 bytes", hdr(0x0800)[:13], false},
			{"tag without TCI (14 bytes)", hdr(0x8100), false},
			{"truncated tag (16 bytes)", hdr(0x8100, 0x00, 100), false},
			{"truncated inner tag (18 bytes)", hdr(0x8100, 0x00, 100, 0x81, 0x00), false},
			{"3 stacked 802.1Q tags", topo.PushTag(topo.PushTag(topo.PushTag(udp(64, "stack"), 0x8100, 100), 0x8100, 100), 0x8100, 100), true},
			{"802.1ad + 2 802.1Q tags", topo.PushTag(topo.PushTag(topo.PushTag(udp(64, "stack-ad"), 0x8100, 100), 0x8100, 100), 0x88a8, 100), true},
			{"jumbo 3000 bytes over MTU 1500", udp(3000-42, "jumbo"), true},
			{"1519 bytes untagged (MTU+19)", udp(1519-42, "mtu19"), true},
		}
		sniff, err := h.ns.PacketConn(vm1.port)
		if err != nil {
			t.Fatal(err)
		}
		c1, err := vm1.ns.PacketConn("eth0")
		if err != nil {
			t.Fatal(err)
		}
		const n = 3
		for _, c := range cases {
			before := h.stats()
			sent := 0
			var werr error
			for i := 0; i < n; i++ {
				if werr = c1.WriteFrame(c.frame); werr != nil {
					break
				}
				sent++
			}
			seen := 0
			for {
				f, err := sniff.ReadFrame(200 * time.Millisecond)
				if err != nil {
					break
				}
				// count only our test frames, not an ARP refresh of vm1's
				if len(f) == len(c.frame) && bytes.Equal(f[:12], c.frame[:12]) {
					seen++
				}
			}
			want := uint64(seen)
			if portBackend(dp) == "afxdp" {
				want = uint64(sent)
			}
			h.waitDrops(vm1.port, "malformed", dropsOf(before, vm1.port, "malformed")+want, 2*time.Second)
			time.Sleep(50 * time.Millisecond)
			delta := dropDelta(before, h.stats(), vm1.port)
			t.Logf("%s (%d bytes): sent %d (err %v), hypervisor packet socket saw %d, drops %v", c.name, len(c.frame), sent, werr, seen, delta)
			if c.mustGet && want != n {
				t.Errorf("%s: only %d of %d frames reached the datapath (sent %d, err %v)", c.name, want, n, sent, werr)
			}
			if delta["malformed"] != want {
				t.Errorf("%s: malformed drops +%d, want +%d", c.name, delta["malformed"], want)
			}
			for r, v := range delta {
				if r != "malformed" {
					t.Errorf("%s: counted %d under %q, want only malformed", c.name, v, r)
				}
			}
		}

		// Runts through a real tap, written by the "VM" itself.
		for _, size := range []int{1, 10, 13} {
			before := dropsOf(h.stats(), "vnet9", "malformed")
			frame := make([]byte, size)
			copy(frame, topo.BroadcastMAC())
			if _, err := tap.Write(frame); err != nil {
				t.Logf("tap runt of %d bytes: kernel refused: %v", size, err)
				continue
			}
			got := h.waitDrops("vnet9", "malformed", before+1, 2*time.Second)
			t.Logf("tap runt of %d bytes accepted by tun; malformed +%d", size, got-before)
			if got-before != 1 {
				t.Errorf("tap runt of %d bytes: malformed drops +%d, want +1", size, got-before)
			}
		}

		h.alive()
		vm1.mustPing(vm2)
		vm2.mustPing(vm1)
		// A full-size frame still passes: the MTU check is not off by a few.
		big := topo.BuildUDPv4(dst, src, net.ParseIP(vm1.ip), net.ParseIP(vm2.ip), 5001, 5001, make([]byte, 1500-28))
		c2, err := vm2.ns.PacketConn("eth0")
		if err != nil {
			t.Fatal(err)
		}
		if err := c1.WriteFrame(big); err != nil {
			t.Fatal(err)
		}
		f, err := c2.ReadFrame(2 * time.Second)
		for err == nil && len(f) != len(big) {
			f, err = c2.ReadFrame(2 * time.Second)
		}
		if err != nil {
			t.Errorf("a 1514-byte frame (MTU 1500) from vm1 did not reach vm2: %v", err)
		}
	})
}

// dropsOf returns one drop counter of port from a stats snapshot.
func dropsOf(st api.Stats, port, reason string) uint64 {
	for _, p := range st.Ports {
		if p.Name == port {
			return p.Drops[reason]
		}
	}
	return 0
}
