package daemon

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/vepa"
)

// answeringBridge is the bridge side of VDP for a daemon's station, in
// memory: it acknowledges every request with the same TLVs after answer
// (when set) changed them, and stays silent while mute.
type answeringBridge struct {
	t   *testing.T
	ecp *vepa.ECP
	st  *vepa.VDPStation

	mu     sync.Mutex
	mute   bool
	answer func(v *vepa.VSI)
}

var (
	testBridgeMAC  = [6]byte{2, 0, 0, 0, 0, 0x99}
	testStationMAC = [6]byte{2, 0, 0, 0, 0, 1}
)

// withAnsweringBridge gives a started daemon a VDP station (served as
// runVDP does: its changes reach the ports) talking to an answering
// bridge.
func withAnsweringBridge(t *testing.T, d *Daemon) *answeringBridge {
	t.Helper()
	b := &answeringBridge{t: t}
	kick := make(chan struct{}, 1)
	var err error
	b.st, err = vepa.NewVDPStation(vepa.VDPConfig{MAC: testStationMAC, ManagerID: vepa.ManagerID(vdpManager), RKA: 17, RTE: 10,
		Logger: slog.New(slog.DiscardHandler), OnChange: kicker(kick),
		Send: func(f []byte) error {
			b.mu.Lock()
			mute := b.mute
			b.mu.Unlock()
			if !mute {
				go b.ecp.Handle(append([]byte(nil), f...))
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	b.ecp, err = vepa.NewECP(vepa.ECPConfig{MAC: testBridgeMAC, Peer: testStationMAC, RTE: 10,
		Send: func(f []byte) error { go b.st.Handle(append([]byte(nil), f...)); return nil },
		Deliver: func(p []byte) {
			pdu, err := vepa.ParseVDP(p)
			if err != nil {
				t.Errorf("bridge: %v", err)
				return
			}
			b.mu.Lock()
			answer := b.answer
			b.mu.Unlock()
			for i := range pdu.VSIs {
				pdu.VSIs[i].Status = vepa.VDPStatusAck
				if answer != nil && pdu.VSIs[i].Mode != vepa.VDPDeassoc {
					answer(&pdu.VSIs[i])
				}
			}
			resp, _ := pdu.Append(nil)
			go func() { _ = b.ecp.Request(context.Background(), resp) }()
		}})
	if err != nil {
		t.Fatal(err)
	}
	b.st.SetBridge(testBridgeMAC[:])
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.serveVDP(ctx, b.st, kick); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	for d.vdp.Load() != b.st { // serving
		time.Sleep(time.Millisecond)
	}
	return b
}

func (b *answeringBridge) set(mute bool, answer func(v *vepa.VSI)) {
	b.mu.Lock()
	b.mute, b.answer = mute, answer
	b.mu.Unlock()
}

// assignVID answers every VID 0 with vid.
func assignVID(vid uint16) func(v *vepa.VSI) {
	return func(v *vepa.VSI) {
		for i := range v.Filters {
			if v.Filters[i].VID == 0 {
				v.Filters[i].VID = vid
			}
		}
	}
}

// waitPort polls GetPort until ok holds.
func waitPort(t *testing.T, d *Daemon, name, what string, ok func(api.Port) bool) api.Port {
	t.Helper()
	deadline := time.Now().Add(4 * time.Second)
	for {
		p, err := d.GetPort(context.Background(), name)
		if err == nil && ok(p) {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("port %s: %s not reached: %+v (%v)", name, what, p, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A port added with its VLAN from the bridge waits, forwarding nothing,
// until the bridge's ASSOC answer carries a VID; then it forwards on it.
// De-associated by the bridge it waits and asks again; a bridge answer
// with VID 0 makes it down with that reason. The record never holds the
// VID, and a restarted daemon starts waiting again.
func TestBridgeAssignedVLAN(t *testing.T) {
	r := newRig(t)
	d := r.start(t)
	ctx := context.Background()
	r.linksUp("up0", "vnet1")
	b := withAnsweringBridge(t, d)
	b.set(true, nil) // silent for now
	yes := true
	p, err := d.AddPort(ctx, api.PortSpec{Name: "vnet1", VLANFromBridge: &yes, MACs: &[]string{"52:54:00:00:00:01"}})
	if err != nil {
		t.Fatal(err)
	}
	if p.State != "waiting" || !p.VLANFromBridge || p.VLAN != 0 || p.AssignedVLAN != 0 || !strings.Contains(p.StateReason, "no answer yet") {
		t.Fatalf("added: %+v, want waiting for the bridge's answer", p)
	}
	r.mem.Iface("vnet1").Inject(frame(1, 2))
	time.Sleep(100 * time.Millisecond)
	if got := r.mem.Iface("up0").Sent(); len(got) != 0 {
		t.Fatalf("a waiting port sent %d frames to the uplink", len(got))
	}
	p, _ = d.GetPort(ctx, "vnet1")
	if p.Drops["vid_unassigned"] != 1 {
		t.Errorf("drops %v, want vid_unassigned 1", p.Drops)
	}
	if st, _ := d.Status(ctx); st.PortsUp != 0 {
		t.Errorf("status counts %d ports up, the waiting one among them", st.PortsUp)
	}
	wantLines(t, "a waiting port", scrape(t, d),
		`vswitch_port_state{port="vnet1",state="waiting"} 1`,
		`vswitch_port_state{port="vnet1",state="up"} 0`,
		`vswitch_port_oper_up{port="vnet1"} 0`,
		`vswitch_port_drops_total{port="vnet1",reason="vid_unassigned"} 1`)

	b.set(false, assignVID(200))
	p = waitPort(t, d, "vnet1", "VLAN 200 assigned", func(p api.Port) bool { return p.AssignedVLAN == 200 })
	if p.State != "up" || p.VLAN != 0 || p.StateReason != "" {
		t.Errorf("assigned: %+v", p)
	}
	sendsTagged(t, r.mem, "vnet1", 200)
	if vs := d.vsis(); len(vs) != 1 || vs[0].VLAN != 0 || vs[0].AssignedVLAN != 200 || vs[0].State != vepa.VSIAssociated || vs[0].FilterFormat != "MAC+VID" {
		t.Errorf("GET /v1/vsis: %+v", vs)
	}
	raw, _ := json.Marshal(p)
	if !strings.Contains(string(raw), `"vlan":0,`) || !strings.Contains(string(raw), `"vlan_from_bridge":true`) || !strings.Contains(string(raw), `"assigned_vlan":200`) {
		t.Errorf("port JSON %s", raw)
	}
	c, _ := d.st.Port("vnet1")
	if rec, _ := json.Marshal(c); strings.Contains(string(rec), `"vlan"`) || !strings.Contains(string(rec), `"vlan_from_bridge":true`) {
		t.Errorf("the record %s holds the assignment", rec)
	}
	// A change VDP does not see keeps the assignment; one in the filters
	// (the PCP) registers the VSI anew, and the bridge assigns again.
	if p, err := d.UpdatePort(ctx, "vnet1", api.PortSpec{Flood: &yes}); err != nil || p.AssignedVLAN != 200 || p.State != "up" {
		t.Fatalf("set-port --flood: %+v, %v", p, err)
	}
	if _, err := d.UpdatePort(ctx, "vnet1", api.PortSpec{PCP: intp(3)}); err != nil {
		t.Fatal(err)
	}
	waitPort(t, d, "vnet1", "VLAN 200 again after the PCP change", func(p api.Port) bool { return p.AssignedVLAN == 200 && p.PCP == 3 })

	// The bridge drops the VSI: the port waits, then takes the new VID.
	b.set(false, assignVID(300))
	mac := net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}
	de := vepa.VSI{Mode: vepa.VDPDeassoc, IDFormat: vepa.VSIIDUUID, ID: vsiUUID("vnet1", mac), FilterFormat: vepa.FilterMACVID,
		Filters: []vepa.Filter{{VID: 200, PCP: 3, MAC: mac}}}
	req, _ := (&vepa.VDPPDU{ManagerID: vepa.ManagerID(vdpManager), VSIs: []vepa.VSI{de}}).Append(nil)
	if err := b.ecp.Request(ctx, req); err != nil {
		t.Fatal(err)
	}
	waitPort(t, d, "vnet1", "VLAN 300 after the bridge's DEASSOC", func(p api.Port) bool { return p.AssignedVLAN == 300 && p.State == "up" })
	sendsTagged(t, r.mem, "vnet1", 300)

	// A bridge that assigns nothing (VID 0): down, with the reason.
	b.set(false, func(v *vepa.VSI) { v.Filters[0].VID = 0 })
	if err := b.ecp.Request(ctx, req); err != nil {
		t.Fatal(err)
	}
	p = waitPort(t, d, "vnet1", "down for VID 0", func(p api.Port) bool { return p.State == "down" })
	if p.AssignedVLAN != 0 || !strings.Contains(p.StateReason, "assigned no VLAN") {
		t.Errorf("down: %+v", p)
	}
	r.mem.Iface("vnet1").Inject(frame(1, 2))
	time.Sleep(100 * time.Millisecond)
	if got := r.mem.Iface("up0").Sent(); len(got) != 0 {
		t.Fatalf("a port down for VID 0 sent %d frames", len(got))
	}

	// Restarted, the port waits again: the assignment is the bridge's to
	// give again.
	d.Close()
	d = r.start(t)
	r.linksUp("up0", "vnet1")
	p, _ = d.GetPort(ctx, "vnet1")
	if p.State != "waiting" || p.AssignedVLAN != 0 || !p.VLANFromBridge || !strings.Contains(p.StateReason, "VDP is not running") {
		t.Errorf("after a restart: %+v", p)
	}
}

// A port VDP cannot register (a trunk of every VLAN with a MAC) still
// forwards, and says why it has no VSI.
func TestVDPErrorShown(t *testing.T) {
	r := newRig(t)
	d := r.start(t)
	ctx := context.Background()
	withAnsweringBridge(t, d)
	tr := "1-4094"
	p, err := d.AddPort(ctx, api.PortSpec{Name: "vnet1", Trunk: &tr, MACs: &[]string{"52:54:00:00:00:01"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.VDPError, "4094 filter entries per VSI") {
		t.Errorf("vdp_error %q", p.VDPError)
	}
	if vs := d.vsis(); len(vs) != 0 {
		t.Errorf("VSIs %+v", vs)
	}
}

// A VM migrating in on a port whose VLAN the bridge assigns, to a bridge
// that assigns it only to the association (its answer to the PRE-ASSOC
// keeps VID 0): the port forwards nothing while pre-associated, yet the
// VM's first frame (QEMU's announcement, dropped as vid_unassigned) still
// promotes it, and the ASSOC gets the VLAN. Before, the dropped frame was
// not the VM's first frame: the port stayed incoming and without a VLAN
// until --preassociate-timeout (5 minutes) or libvirt's resume event.
func TestIncomingPortWaitingForItsVLAN(t *testing.T) {
	r := newRig(t)
	d := r.start(t)
	ctx := context.Background()
	r.linksUp("up0", "vnet1")
	b := withAnsweringBridge(t, d)
	b.set(false, func(v *vepa.VSI) {
		if v.Mode == vepa.VDPAssoc {
			assignVID(300)(v)
		}
	})
	yes, in := true, "incoming"
	if _, err := d.AddPort(ctx, api.PortSpec{Name: "vnet1", VLANFromBridge: &yes, MACs: &[]string{"52:54:00:00:00:01"}, Migration: &in}); err != nil {
		t.Fatal(err)
	}
	p := waitPort(t, d, "vnet1", "down for the PRE-ASSOC's VID 0", func(p api.Port) bool { return p.State == "down" })
	if p.Migration != "incoming" || !strings.Contains(p.StateReason, "assigned no VLAN") {
		t.Fatalf("pre-associated: %+v", p)
	}
	r.mem.Iface("vnet1").Inject(frame(1, 0xff)) // the VM runs here
	p = waitPort(t, d, "vnet1", "promoted and given VLAN 300", func(p api.Port) bool { return p.AssignedVLAN == 300 })
	if p.Migration != "" || p.State != "up" || p.Drops["vid_unassigned"] != 1 {
		t.Errorf("after the VM's first frame: %+v", p)
	}
	sendsTagged(t, r.mem, "vnet1", 300)
}

// A change of a port's VSIs (its S-channel, MACs, type, PCP, ...) makes
// them new registrations whose VLAN the bridge has yet to give: the
// datapath gets the port waiting at once, never the VID the bridge gave
// the old ones (moved to another S-channel, that VID may be another
// tenant's VLAN there). Before, UpdatePort gave the datapath the changed
// port with the old VID, and only the re-registration that followed took
// it away: two configurations, the VM's frames forwarded meanwhile on a
// VLAN nobody assigned to the new registration. A change VDP does not see
// keeps the VID. (The answering bridge talks on the untagged link, so the
// change here is the PCP, which the filters carry.)
func TestChangedVSIsDropTheAssignmentAtOnce(t *testing.T) {
	r := newRig(t)
	d := r.start(t)
	ctx := context.Background()
	r.linksUp("up0", "vnet1")
	b := withAnsweringBridge(t, d)
	b.set(false, assignVID(200))
	yes := true
	if _, err := d.AddPort(ctx, api.PortSpec{Name: "vnet1", VLANFromBridge: &yes, MACs: &[]string{"52:54:00:00:00:01"}}); err != nil {
		t.Fatal(err)
	}
	waitPort(t, d, "vnet1", "VLAN 200", func(p api.Port) bool { return p.AssignedVLAN == 200 })
	b.set(true, nil) // the new registrations stay unanswered

	v := d.sw.FDBVersion() // counts the datapath's configurations
	p, err := d.UpdatePort(ctx, "vnet1", api.PortSpec{Flood: &yes})
	if err != nil || p.AssignedVLAN != 200 || p.State != "up" {
		t.Fatalf("set-port --flood: %+v, %v; want VLAN 200 kept", p, err)
	}
	if n := d.sw.FDBVersion() - v; n != 1 {
		t.Errorf("set-port --flood configured the datapath %d times, want 1", n)
	}
	v = d.sw.FDBVersion()
	p, err = d.UpdatePort(ctx, "vnet1", api.PortSpec{PCP: intp(5)})
	if err != nil || p.AssignedVLAN != 0 || p.State != "waiting" {
		t.Fatalf("set-port --pcp 5: %+v, %v; want waiting", p, err)
	}
	if n := d.sw.FDBVersion() - v; n != 1 {
		t.Errorf("set-port --pcp 5 configured the datapath %d times, want once (waiting), not first on VLAN 200", n)
	}
	for _, ps := range d.sw.Ports() {
		if ps.Config.Name == "vnet1" && (ps.Config.VLAN != 0 || ps.Config.PCP != 5) {
			t.Errorf("the datapath has %+v, want PCP 5 and no VLAN", ps.Config)
		}
	}
}
