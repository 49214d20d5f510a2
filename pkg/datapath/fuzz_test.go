package datapath

import (
	"net"
	"testing"

	"github.com/vswitch/vswitch/pkg/backend"
	portcfg "github.com/vswitch/vswitch/pkg/port"
	"github.com/vswitch/vswitch/pkg/vlan"
)

// FuzzPipelines feeds arbitrary bytes through both pipelines (VM -> uplink
// on an access port and on a trunk port, uplink -> VM) in every mode: no
// input may panic, and every frame must be either forwarded or counted.
func FuzzPipelines(f *testing.F) {
	f.Add(benchFrame(net.HardwareAddr{0x52, 0x54, 0, 0, 0, 2}, net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}))
	f.Add(benchFrame(net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, net.HardwareAddr{0x52, 0x54, 0, 0, 0, 9},
		vlan.Tag{TPID: vlan.TPIDSTag, TCI: 7}, vlan.Tag{TPID: vlan.TPIDCTag, TCI: 100}))
	f.Add([]byte{0x01, 0x80, 0xc2, 0, 0, 0, 1, 2, 3, 4, 5, 6, 0x88, 0xcc})
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, frame []byte) {
		for _, mode := range []Mode{ModeVEPA, ModeVEB} {
			sw, p1, _ := benchSwitch(t, 0)
			sw.cfg.Mode = mode
			tr, _ := vlan.ParseVIDSet("1-4094")
			if err := sw.AddPort(portcfg.Config{Name: "trunk0", Trunk: tr, NativeVLAN: 100, SVID: 7}); err != nil {
				t.Fatal(err)
			}
			pt := sw.ports["trunk0"]
			pt.io.Store(&portIO{tap: &nullQueue{}, up: &nullQueue{}, stop: make(chan struct{}), done: make(chan struct{})})
			snap := sw.snap.Load()
			local := func() (n uint64) { // frames switched locally (VEB)
				for _, q := range sw.ports {
					n += q.io.Load().tap.(*nullQueue).sent
				}
				return n
			}
			for _, p := range []*port{p1, pt} {
				w := newEgressWorker(sw, p, p.io.Load())
				load(w.b, frame)
				before := local()
				w.process(snap, p.view.Load())
				up := p.io.Load().up.(*nullQueue).sent + local() - before
				c := p.ctr.Snapshot()
				var drops uint64
				for _, n := range c.Drops {
					drops += n
				}
				if c.RxPackets != 1 || up+drops < 1 {
					t.Fatalf("%s: frame neither forwarded nor counted (rx %d, up %d, drops %v)", p.name, c.RxPackets, up, c.Drops)
				}
			}
			w := newIngressWorker(sw, &nullQueue{}, 0)
			load(w.b, frame)
			w.process(snap)
		}
	})
}

// load puts one copy of frame, with headroom, into b.
func load(b *backend.Batch, frame []byte) {
	buf := make([]byte, 64+len(frame))
	copy(buf[64:], frame)
	b.Buf[0], b.Off[0], b.Len[0], b.N = buf, 64, len(frame), 1
}
