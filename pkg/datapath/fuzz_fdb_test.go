package datapath

import (
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/vswitch/vswitch/pkg/backend/queuetest"
	portcfg "github.com/vswitch/vswitch/pkg/port"
	"github.com/vswitch/vswitch/pkg/vlan"
)

// fuzzLimits are small, so a short input reaches every bound.
var fuzzLimits = FDBLimits{PerPort: 4, PerVLAN: 6, Total: 10}

// fuzzPorts: access ports with and without their own limit, a trunk, a
// port with a registered MAC and one on an S-channel.
func fuzzPorts() []portcfg.Config {
	two := 2
	tr, _ := vlan.ParseVIDSet("10,20")
	return []portcfg.Config{
		{Name: "p0", VLAN: 10},
		{Name: "p1", VLAN: 10, MaxMACs: &two},
		{Name: "p2", Trunk: tr, NativeVLAN: 10},
		{Name: "p3", VLAN: 20, MACs: []net.HardwareAddr{fuzzMAC(1)}},
		{Name: "p4", VLAN: 10, SVID: 5},
	}
}

// fuzzMAC is one of a few MACs, so that ports share and move them.
func fuzzMAC(b byte) net.HardwareAddr { return net.HardwareAddr{0x52, 0x54, 0, 0, 0, b % 24} }

// FuzzLearning feeds a sequence of operations into one running switch on
// the in-memory backend: frames from several ports (random source among
// a few MACs, so they collide and move), frames from the uplink, port
// changes (limit, VLAN, S-channel: Forget and domain reuse) and sweeps, all
// while the port workers learn concurrently. Once every frame has been
// received: no panic, no learned count over its limit, and the counts
// match what the table holds.
func FuzzLearning(f *testing.F) {
	for _, s := range []string{
		"\x00\x01\x00\x01\x01\x00\x02\x02\x01\x03\x01\x00\x04\x05\x00",
		"\x00\x00\x00\x00\x01\x00\x00\x02\x00\x00\x03\x00\x00\x04\x00\x00\x05\x00\x00\x06\x00\x00\x07\x00\x00\x08\x00\x00\x09\x00\x00\x0a\x00",
		"\x05\x00\x01\x00\x03\x00\x05\x04\x02\x04\x07\x00\x06\x00\x00\x07\x03\x01\x01\x03\x00",
		"\x02\x09\x01\x02\x0a\x00\x02\x0b\x01\x02\x0c\x00\x02\x0d\x01\x02\x0e\x00\x06\x02\x01",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 3*512 {
			ops = ops[:3*512]
		}
		be := queuetest.New()
		sw, err := New(Config{Uplink: "up0", Backend: be, FDB: fuzzLimits, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		if err := sw.Start(); err != nil {
			t.Fatal(err)
		}
		defer sw.Stop()
		cfgs := fuzzPorts()
		maxLimit := map[string]int{} // the highest limit each port had
		for _, c := range cfgs {
			if err := sw.AddPort(c); err != nil {
				t.Fatal(err)
			}
			if err := sw.Attach(c.Name); err != nil {
				t.Fatal(err)
			}
			maxLimit[c.Name] = int(sw.ports[c.Name].view.Load().maxMACs)
		}
		sent := map[string]uint64{}
		remote := net.HardwareAddr{0x52, 0x54, 0, 0, 1, 0x99}
		for ; len(ops) >= 3; ops = ops[3:] {
			op, a, b := ops[0]%8, ops[1], ops[2]
			switch {
			case op < 5: // a frame from port op
				c := cfgs[op]
				dst := remote
				if b&1 != 0 {
					dst = fuzzMAC(b >> 1)
				}
				var tags []vlan.Tag
				if c.IsTrunk() && b&2 != 0 {
					tags = append(tags, vlan.Tag{TPID: vlan.TPIDCTag, TCI: 10 + 10*uint16(b>>2&1)})
				}
				be.Iface(c.Name).Inject(benchFrame(dst, fuzzMAC(a), tags...))
				sent[c.Name]++
			case op == 5: // change a port: its limit, VLAN or S-channel
				i := int(a) % len(cfgs)
				c := cfgs[i]
				switch b % 3 {
				case 0:
					if b&4 != 0 {
						c.MaxMACs = nil
					} else {
						n := int(b>>3) % 6
						c.MaxMACs = &n
					}
				case 1:
					if !c.IsTrunk() {
						c.VLAN = 30 - c.VLAN // 10 <-> 20
					}
				case 2:
					c.SVID = [3]uint16{0, 5, 6}[int(b>>2)%3]
				}
				if err := sw.UpdatePort(c); err != nil {
					t.Fatalf("update %+v: %v", c, err)
				}
				cfgs[i] = c
				maxLimit[c.Name] = max(maxLimit[c.Name], int(sw.ports[c.Name].view.Load().maxMACs))
			case op == 6: // age everything, or forget a port
				if b&1 == 0 {
					sw.fdb.Sweep(-time.Second, func(int) bool { return true })
				} else {
					sw.fdb.Forget(int(a) % len(cfgs))
				}
			default: // a frame from the uplink
				tags := []vlan.Tag{{TPID: vlan.TPIDCTag, TCI: 10 + 10*uint16(b&1)}}
				if b&2 != 0 {
					tags = append([]vlan.Tag{{TPID: vlan.TPIDSTag, TCI: 5}}, tags...)
				}
				dst := fuzzMAC(a)
				if b&4 != 0 {
					dst = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
				}
				be.Iface("up0").Inject(benchFrame(dst, remote, tags...))
				sent["up0"]++
			}
		}
		// Wait until every frame was received and processed.
		deadline := time.Now().Add(5 * time.Second)
		for {
			done := sw.uplink.RxPackets.Load() == sent["up0"]
			for _, c := range cfgs {
				done = done && sw.ports[c.Name].ctr.RxPackets.Load() == sent[c.Name]
			}
			if done {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("frames not processed within 5 s: sent %v", sent)
			}
			time.Sleep(100 * time.Microsecond)
		}
		tab := sw.fdb.t.Load()
		if n := tab.total.Load(); n > int32(fuzzLimits.Total) {
			t.Errorf("%d learned, limit %d", n, fuzzLimits.Total)
		}
		for d := range numDomains {
			if n := tab.domain[d].Load(); n > int32(fuzzLimits.PerVLAN) {
				t.Errorf("domain %d holds %d, limit %d", d, n, fuzzLimits.PerVLAN)
			}
		}
		for _, c := range cfgs {
			// A worker still on the view before a change may learn within
			// the limit it had: the bound is the highest one.
			if n := sw.fdb.SlotCount(sw.ports[c.Name].slot); n > maxLimit[c.Name] {
				t.Errorf("%s learned %d, limit %d", c.Name, n, maxLimit[c.Name])
			}
		}
		recount(t, sw.fdb)
	})
}
