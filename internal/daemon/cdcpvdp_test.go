package daemon

import (
	"context"
	"encoding/binary"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/vepa"
	"github.com/vswitch/vswitch/pkg/vlan"
)

// channelLog records the VSI TLVs the station sends, with the S-VID of
// each frame (0: untagged); each ECP request once (nobody acknowledges).
type channelLog struct {
	mu   sync.Mutex
	seqs map[[2]uint16]bool
	got  []channelVSI
}

type channelVSI struct {
	svid uint16
	vepa.VSI
}

func (b *channelLog) send(f []byte) error {
	svid := uint16(0)
	if len(f) >= 18 && binary.BigEndian.Uint16(f[12:]) == vlan.TPIDSTag {
		svid = binary.BigEndian.Uint16(f[14:]) & 0xfff
		u := make([]byte, len(f))
		f = u[:vlan.PopTo(u, f)]
	}
	seq, p, ok := vdpRequest(f)
	if !ok {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.seqs[[2]uint16{svid, seq}] {
		return nil
	}
	b.seqs[[2]uint16{svid, seq}] = true
	for _, v := range p.VSIs {
		b.got = append(b.got, channelVSI{svid, v})
	}
	return nil
}

func (b *channelLog) on(svid uint16) []channelVSI {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []channelVSI
	for _, g := range b.got {
		if g.svid == svid {
			out = append(out, g)
		}
	}
	return out
}

// vsisOf are the station's VSIs of port name.
func vsisOf(st *vepa.VDPStation, name string) []vepa.VSIStatus {
	var out []vepa.VSIStatus
	for _, v := range st.VSIs() {
		if v.Key == name {
			out = append(out, v)
		}
	}
	return out
}

// A port whose S-channel CDCP holds registers nothing there: its VSIs
// wait with CDCP's reason and no frame leaves with its S-tag (not even a
// DEASSOC when the grant is taken back), while a port off S-channels
// registers as usual; once granted, its VSIs go out on the S-channel at
// once. A port whose VLAN is the bridge's is down with CDCP's reason
// while held, then waits for VDP's answer.
func TestCDCPHoldsSChannelVDP(t *testing.T) {
	_, d := cdcpDaemon(t, CDCPOn, "up0", "vnet1", "vnet2")
	ctx := context.Background()
	log := &channelLog{seqs: map[[2]uint16]bool{}}
	st, err := vepa.NewVDPStation(vepa.VDPConfig{MAC: testStationMAC, Send: log.send, ManagerID: vepa.ManagerID(vdpManager), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	st.SetBridge(testBridgeMAC[:])
	kick := make(chan struct{}, 1)
	vctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { d.serveVDP(vctx, st, kick); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	for d.vdp.Load() != st {
		time.Sleep(time.Millisecond)
	}
	yes := true
	if _, err := d.AddPort(ctx, api.PortSpec{Name: "vnet1", VLAN: intp(100), SVID: intp(10), MACs: &[]string{"52:54:00:00:00:01"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.AddPort(ctx, api.PortSpec{Name: "vnet2", VLANFromBridge: &yes, SVID: intp(10), MACs: &[]string{"52:54:00:00:00:02"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.AddPort(ctx, api.PortSpec{Name: "vnet9", VLAN: intp(100), MACs: &[]string{"52:54:00:00:00:09"}}); err != nil {
		t.Fatal(err)
	}
	// --cdcp on, no answer: held.
	deadline := time.Now().Add(3 * time.Second)
	for len(log.on(0)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("vnet9's VSI (no S-channel) was never sent")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	if got := log.on(10); len(got) != 0 {
		t.Fatalf("sent on the held S-channel 10: %+v", got)
	}
	for _, n := range []string{"vnet1", "vnet2"} {
		vs := vsisOf(st, n)
		if len(vs) != 1 || vs[0].State != vepa.VSIWaiting || vs[0].SVID != 10 || !strings.Contains(vs[0].Reason, "no CDCP answer") {
			t.Fatalf("%s's VSIs while held: %+v", n, vs)
		}
	}
	if p := portNamed(t, d, "vnet2"); p.State != "down" || !strings.Contains(p.StateReason, "no CDCP answer") || p.AssignedVLAN != 0 {
		t.Fatalf("vnet2 (VLAN from the bridge) while held: %+v", p)
	}

	// Granted: both register on S-channel 10 at once.
	withCDCP(t, d)
	d.controlFrame(bridgeCDCP(t, vepa.SChannel{SCID: 2, SVID: 10}))
	deadline = time.Now().Add(3 * time.Second)
	for {
		macs := map[string]uint16{}
		for _, g := range log.on(10) {
			if g.Mode == vepa.VDPAssoc {
				macs[g.Filters[0].MAC.String()] = g.Filters[0].VID
			}
		}
		if vid, ok := macs["52:54:00:00:00:01"]; ok && vid == 100 {
			if vid, ok := macs["52:54:00:00:00:02"]; ok && vid == 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the grant, sent on S-channel 10: %+v", log.on(10))
		}
		time.Sleep(10 * time.Millisecond)
	}
	waitPort(t, d, "vnet2", "waiting for VDP's answer", func(p api.Port) bool {
		return p.State == "waiting" && strings.Contains(p.StateReason, "no answer yet")
	})

	// The grant taken back (the bridge's goodbye, --cdcp on): waiting
	// again, and nothing more on the S-channel.
	bye := bridgeCDCP(t)
	bye[14+2+7+2+3+2+1] = 0 // the TTL TLV's value (120 -> 0)
	d.controlFrame(bye)
	time.Sleep(100 * time.Millisecond)
	n := len(log.on(10))
	time.Sleep(1500 * time.Millisecond) // past a re-send (1 s) of the unanswered requests
	if got := log.on(10)[n:]; len(got) != 0 {
		t.Fatalf("sent on S-channel 10 after the grant was taken back: %+v", got)
	}
	if vs := vsisOf(st, "vnet1"); len(vs) != 1 || vs[0].State != vepa.VSIWaiting {
		t.Fatalf("vnet1's VSIs after the grant was taken back: %+v", vs)
	}
	if p := portNamed(t, d, "vnet2"); p.State != "down" || !strings.Contains(p.StateReason, "no CDCP answer") {
		t.Fatalf("vnet2 after the grant was taken back: %+v", p)
	}
	if vs := vsisOf(st, "vnet9"); len(vs) != 1 || vs[0].State != vepa.VSIAssociating {
		t.Fatalf("vnet9 (no S-channel): %+v", vs)
	}
}
