package integration

import (
	"encoding/binary"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/test/topo"
)

// Two tenants on S-channels 10 and 20 use C-VID 100 each, and tenant B's
// vm3 has the same MAC as tenant A's vm1 (a cloned image). Each tenant
// must keep reaching its own VM: the switch learns that MAC once per
// S-channel. With one (C-VID, MAC) entry for both, vm3's replies moved
// it and unicast to vm1 (S-channel 10) found a port on S-channel 20 and
// was dropped. On the wire frames carry the S-tag (802.1ad) outside the
// C-tag, and the tenants cannot reach each other.
func TestSChannelsWithSameMAC(t *testing.T) {
	forEachDatapath(t, func(t *testing.T, dp string) {
		l, hvs := newLab(t, dp, 1)
		h := hvs[0]
		vm1, vm2, vm3, vm4 := h.addVM(1), h.addVM(2), h.addVM(3), h.addVM(4)
		for _, step := range []func() error{
			func() error { return vm3.ns.SetDown("eth0") },
			func() error { return vm3.ns.SetMAC("eth0", vm1.mac.String()) },
			func() error { return vm3.ns.SetUp("eth0") },
		} {
			if err := step(); err != nil {
				t.Fatal(err)
			}
		}
		vm3.mac = vm1.mac
		h.start()
		capt, err := l.sw.Capture(h.swPort, topo.WithOutgoing(false))
		if err != nil {
			t.Fatal(err)
		}
		h.addPort(vm1.port, "--vlan", "100", "--svid", "10", "--pcp", "2")
		h.addPort(vm2.port, "--vlan", "100", "--svid", "10")
		h.addPort(vm3.port, "--vlan", "100", "--svid", "20")
		h.addPort(vm4.port, "--vlan", "100", "--svid", "20")
		vm2.mustPing(vm1) // ARP and learning, retries allowed
		vm4.mustPing(vm3)

		// Now single echoes, alternating tenants: each one must be
		// answered at once.
		pa, err := topo.NewPinger(vm2.ns, vm2.ip, vm1.ip)
		if err != nil {
			t.Fatal(err)
		}
		defer pa.Close()
		pb, err := topo.NewPinger(vm4.ns, vm4.ip, vm3.ip)
		if err != nil {
			t.Fatal(err)
		}
		defer pb.Close()
		for i := 0; i < 4; i++ {
			for _, p := range []struct {
				name string
				p    *topo.Pinger
			}{{"tenant A vm2 -> vm1", pa}, {"tenant B vm4 -> vm3", pb}} {
				if got, err := p.p.Count(1, 0, time.Second); got != 1 {
					t.Fatalf("round %d: %s: echo not answered (%v)", i, p.name, err)
				}
			}
		}
		vm2.mustNotPing(vm4, "vm4 is on S-channel 20, vm2 on 10")

		// The FDB holds vm1's MAC once per S-channel.
		var es []api.FDBEntry
		if err := json.Unmarshal([]byte(h.mustCtl("-o", "json", "fdb", "--vlan", "100")), &es); err != nil {
			t.Fatal(err)
		}
		bySVID := map[int]string{}
		for _, e := range es {
			if e.MAC == vm1.mac.String() {
				bySVID[e.SVID] = e.Port
			}
		}
		if bySVID[10] != vm1.port || bySVID[20] != vm3.port || len(bySVID) != 2 {
			t.Errorf("FDB entries for %s by S-VID: %v, want 10:%s 20:%s", vm1.mac, bySVID, vm1.port, vm3.port)
		}
		if table := h.mustCtl("fdb"); !strings.Contains(table, "SVID") || !strings.Contains(table, vm3.port) {
			t.Errorf("vswctl fdb does not show the S-VIDs:\n%s", table)
		}

		// Tags on the wire: S-tag outside, C-tag inside, the port's PCP in
		// both. vm1 and vm3 share a MAC: frames are told apart by S-VID.
		type key struct {
			src  string
			svid uint16
		}
		want := map[key]uint16{ // -> PCP
			{vm1.mac.String(), 10}: 2, {vm2.mac.String(), 10}: 0,
			{vm3.mac.String(), 20}: 0, {vm4.mac.String(), 20}: 0,
		}
		seen := map[key]int{}
		for _, f := range capt.Stop() {
			if len(f.Data) < 22 {
				continue
			}
			src := net.HardwareAddr(f.Data[6:12]).String()
			stpid, stci := binary.BigEndian.Uint16(f.Data[12:]), binary.BigEndian.Uint16(f.Data[14:])
			ctpid, ctci := binary.BigEndian.Uint16(f.Data[16:]), binary.BigEndian.Uint16(f.Data[18:])
			k := key{src, stci & 0xfff}
			pcp, ok := want[k]
			if !ok {
				if src == vm2.mac.String() || src == vm4.mac.String() || src == vm1.mac.String() {
					t.Errorf("frame from %s: outer %#04x/%d, not an S-channel of that VM", src, stpid, stci&0xfff)
				}
				continue
			}
			if stpid != 0x88a8 || ctpid != 0x8100 || ctci&0xfff != 100 || stci>>13 != pcp || ctci>>13 != pcp {
				t.Errorf("frame from %s on S-VID %d: outer %#04x PCP %d, inner %#04x/%d PCP %d; want 0x88a8 and 0x8100/100, PCP %d",
					src, k.svid, stpid, stci>>13, ctpid, ctci&0xfff, ctci>>13, pcp)
				continue
			}
			seen[k]++
		}
		for k := range want {
			if seen[k] == 0 {
				t.Errorf("no S-tagged frame from %s on S-VID %d seen on the switch side", k.src, k.svid)
			}
		}
	})
}
