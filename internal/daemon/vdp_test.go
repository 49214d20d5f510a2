package daemon

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vswitch/vswitch/internal/uuid"
	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/port"
	"github.com/vswitch/vswitch/pkg/vepa"
)

// A VSIID is a stable version-5 UUID, different for each port and MAC.
func TestVSIUUID(t *testing.T) {
	mac := net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}
	a, b := vsiUUID("vnet1", mac), vsiUUID("vnet1", mac)
	if a != b {
		t.Fatal("not stable")
	}
	if a == vsiUUID("vnet2", mac) || a == vsiUUID("vnet1", net.HardwareAddr{0x52, 0x54, 0, 0, 0, 2}) {
		t.Error("two ports or two MACs share a VSIID")
	}
	if a[6]>>4 != 5 || a[8]>>6 != 2 {
		t.Errorf("version %d variant %d, want 5 and RFC 4122", a[6]>>4, a[8]>>6)
	}
	zero := [8]byte{}
	if [8]byte(a[:8]) == zero {
		t.Error("first 8 bytes zero: lldpad refuses such UUIDs")
	}
}

const domUUID = "4dea22b3-1d52-d8f3-2516-782e98ab3fa0"

// The VSIs of a port: a domain's (owner a UUID) are named by the domain
// and the MAC, whatever the port is called, so the same VM has the same
// VSIIDs on every host; an instance ID names one VSI with every MAC; a
// port nobody named keeps the VSIID vswitchd always gave it; a port
// without MACs, group or VLAN from the bridge registers nothing.
func TestPortVSIs(t *testing.T) {
	m1, m2 := net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56}, net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x57}
	c := port.Config{Name: "vnet1", VLAN: 100, PCP: 3, MACs: []net.HardwareAddr{m1, m2}, Owner: domUUID, VSIType: 0x123457, VSITypeVersion: 2}
	vs := mustVSIs(t, c)
	dom, _ := uuid.Parse(domUUID)
	if len(vs) != 2 || vs[0].ID != uuid.NameBased(dom, "52:54:00:12:34:56") || vs[1].ID != uuid.NameBased(dom, "52:54:00:12:34:57") {
		t.Fatalf("owned port: %+v", vs)
	}
	for _, v := range vs {
		if v.TypeID != 0x123457 || v.TypeVersion != 2 || v.IDFormat != vepa.VSIIDUUID || v.FilterFormat != vepa.FilterMACVID ||
			len(v.Filters) != 1 || v.Filters[0].VID != 100 || v.Filters[0].PCP != 3 {
			t.Errorf("VSI %+v", v)
		}
	}
	c.Name = "vnet7" // the same VM on another host, another tap
	if again := mustVSIs(t, c); again[0].ID != vs[0].ID {
		t.Errorf("the VSIID changed with the tap's name")
	}
	c.InstanceID = "0b6d9a3c-5e55-4f4e-9f11-2f0d5a6b7c8d"
	vs = mustVSIs(t, c)
	if len(vs) != 1 || uuid.UUID(vs[0].ID).String() != c.InstanceID || len(vs[0].Filters) != 2 || vs[0].Filters[1].MAC.String() != m2.String() {
		t.Fatalf("instance ID: %+v", vs)
	}
	c.InstanceID, c.Owner = "", "someone"
	if vs = mustVSIs(t, c); len(vs) != 2 || vs[0].ID != vsiUUID("vnet7", m1) {
		t.Fatalf("owner not a UUID: %+v", vs)
	}
	if vs := mustVSIs(t, port.Config{Name: "n", VLAN: 10}); len(vs) != 0 {
		t.Errorf("a port without MACs registers %+v", vs)
	}
}

func mustVSIs(t *testing.T, c port.Config) []vepa.VSI {
	t.Helper()
	vs, err := portVSIs(c)
	if err != nil {
		t.Fatalf("portVSIs(%+v): %v", c, err)
	}
	return vs
}

// Trunks, VLANs from the bridge and groups: a trunk's VSI has a filter
// per VID (its native VLAN too); a VLAN from the bridge asks with VID 0,
// with format VID when the port names nothing else (one VSI named after
// the port); a group makes formats 3 and 4, its ID in every entry; a
// trunk VDP cannot carry in one TLV registers nothing, and says why.
func TestPortVSIsFormats(t *testing.T) {
	m1 := net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56}
	tr, _ := port.ParseTrunk("10,20-21")
	vs := mustVSIs(t, port.Config{Name: "t", Trunk: tr, NativeVLAN: 5, PCP: 2, MACs: []net.HardwareAddr{m1}, SVID: 30})
	if len(vs) != 1 || vs[0].FilterFormat != vepa.FilterMACVID || len(vs[0].Filters) != 4 {
		t.Fatalf("trunk: %+v", vs)
	}
	for i, vid := range []uint16{5, 10, 20, 21} {
		if f := vs[0].Filters[i]; f.VID != vid || f.MAC.String() != m1.String() || f.PCP != 2 {
			t.Errorf("trunk filter %d: %+v, want VID %d", i, f, vid)
		}
	}
	vs = mustVSIs(t, port.Config{Name: "b", BridgeVLAN: true, VLAN: 300})
	if len(vs) != 1 || vs[0].FilterFormat != vepa.FilterVID || len(vs[0].Filters) != 1 || vs[0].Filters[0].VID != 0 || vs[0].ID != vsiUUID("b", nil) {
		t.Fatalf("VLAN from the bridge, nothing else: %+v", vs)
	}
	vs = mustVSIs(t, port.Config{Name: "g", BridgeVLAN: true, VSIGroup: 0xfeedbeef})
	if len(vs) != 1 || vs[0].FilterFormat != vepa.FilterGroupVID || vs[0].Filters[0].GroupID != 0xfeedbeef || vs[0].Filters[0].VID != 0 {
		t.Fatalf("group: %+v", vs)
	}
	vs = mustVSIs(t, port.Config{Name: "g", VLAN: 7, VSIGroup: 3, MACs: []net.HardwareAddr{m1}})
	if len(vs) != 1 || vs[0].FilterFormat != vepa.FilterGroupMACVID || vs[0].Filters[0].GroupID != 3 || vs[0].Filters[0].VID != 7 || vs[0].Filters[0].MAC.String() != m1.String() {
		t.Fatalf("group and MAC: %+v", vs)
	}
	all, _ := port.ParseTrunk("1-4094")
	if vs, err := portVSIs(port.Config{Name: "big", Trunk: all, MACs: []net.HardwareAddr{m1}}); err == nil || len(vs) != 0 || !strings.Contains(err.Error(), "4094 filter entries") {
		t.Errorf("trunk of every VLAN: %+v, %v", vs, err)
	}
}

// bridgeLog records the VSI TLVs the station sends (each ECP request
// once: nobody acknowledges them, so ECP sends each again).
type bridgeLog struct {
	mu   sync.Mutex
	seqs map[uint16]bool
	got  []vepa.VSI
	mgrs [][16]byte
}

// vdpRequest parses the station's untagged frame f as an ECP request
// carrying a VDP PDU (ok false: something else).
func vdpRequest(f []byte) (seq uint16, p *vepa.VDPPDU, ok bool) {
	h, payload, err := vepa.ParseECP(f)
	if err != nil || h.Op != vepa.ECPRequest {
		return 0, nil, false
	}
	p, err = vepa.ParseVDP(payload)
	return h.Seq, p, err == nil
}

func (b *bridgeLog) send(f []byte) error {
	seq, p, ok := vdpRequest(f)
	if !ok {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.seqs[seq] {
		return nil
	}
	if b.seqs == nil {
		b.seqs = map[uint16]bool{}
	}
	b.seqs[seq] = true
	for _, v := range p.VSIs {
		b.got = append(b.got, v)
		b.mgrs = append(b.mgrs, p.ManagerID)
	}
	return nil
}

// wait returns the first TLV sent after the n-th that matches.
func (b *bridgeLog) wait(t *testing.T, n int, what string, ok func(vepa.VSI, [16]byte) bool) vepa.VSI {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		b.mu.Lock()
		for i := n; i < len(b.got); i++ {
			if ok(b.got[i], b.mgrs[i]) {
				v := b.got[i]
				b.mu.Unlock()
				return v
			}
		}
		seen := append([]vepa.VSI(nil), b.got...)
		b.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no %s sent; sent: %+v", what, seen)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (b *bridgeLog) mgr(i int) [16]byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.mgrs[i]
}

func (b *bridgeLog) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.got)
}

// withVDP gives a started daemon a VDP station that hears a bridge and
// sends into log (no bridge answers: what matters is what is asked).
func withVDP(t *testing.T, d *Daemon, log *bridgeLog) *vepa.VDPStation {
	t.Helper()
	st, err := vepa.NewVDPStation(vepa.VDPConfig{MAC: [6]byte{2, 0, 0, 0, 0, 1}, Send: log.send, ManagerID: vepa.ManagerID(vdpManager),
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	st.SetBridge(net.HardwareAddr{2, 0, 0, 0, 0, 0x99})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { st.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	d.mu.Lock()
	d.vdp.Store(st)
	d.syncVSIsLocked()
	d.mu.Unlock()
	return st
}

// A VM migrating in: its port, added incoming, pre-associates its VSI with
// the domain's identity; the VM's first frame on the tap promotes it (the
// record is no longer incoming, the VSI is associated with the M bit);
// leaving again (outgoing) de-associates it with the S bit.
func TestMigrationFollowsTheVM(t *testing.T) {
	r := newRig(t)
	d := r.start(t)
	ctx := context.Background()
	r.linksUp("up0", "vnet1")
	log := &bridgeLog{}
	withVDP(t, d, log)
	mac := "52:54:00:00:00:01"
	owner, in, mgr := domUUID, "incoming", "12"
	p, err := d.AddPort(ctx, api.PortSpec{Name: "vnet1", VLAN: intp(100), MACs: &[]string{mac}, Owner: &owner, Migration: &in,
		VSIType: intp(0x123457), VSITypeVersion: intp(2), VSIManager: &mgr})
	if err != nil || p.Migration != "incoming" || p.State != "up" {
		t.Fatalf("add: %+v, %v", p, err)
	}
	dom, _ := uuid.Parse(domUUID)
	id := uuid.NameBased(dom, mac)
	pre := log.wait(t, 0, "PRE-ASSOC", func(v vepa.VSI, m [16]byte) bool { return v.Mode == vepa.VDPPreAssoc })
	if pre.ID != id || pre.TypeID != 0x123457 || pre.TypeVersion != 2 || pre.Status != 0 || log.mgr(0) != [16]byte{12} {
		t.Errorf("PRE-ASSOC %+v under % x", pre, log.mgr(0))
	}
	vs := d.vsis()
	if len(vs) != 1 || vs[0].MgrID != "12" || vs[0].UUID != id.String() || vs[0].TypeID != 0x123457 || vs[0].State != vepa.VSIPreAssociating {
		t.Errorf("GET /v1/vsis: %+v", vs)
	}
	// Nothing from the VM yet: still incoming.
	time.Sleep(100 * time.Millisecond)
	if p, _ := d.GetPort(ctx, "vnet1"); p.Migration != "incoming" {
		t.Fatalf("promoted without a frame: %+v", p)
	}
	n := log.len()
	r.mem.Iface("vnet1").Inject(frame(1, 0xff)) // the VM's announcement
	a := log.wait(t, n, "ASSOC", func(v vepa.VSI, m [16]byte) bool { return v.Mode == vepa.VDPAssoc })
	if a.ID != id || a.Status != vepa.VDPHintM {
		t.Errorf("after the first frame: %+v, want ASSOC with the M bit", a)
	}
	if p, _ := d.GetPort(ctx, "vnet1"); p.Migration != "" {
		t.Errorf("port still %q after the VM ran", p.Migration)
	}
	if c, _ := d.st.Port("vnet1"); c.Migration != "" {
		t.Errorf("the record still says %q", c.Migration)
	}
	if vs := d.vsis(); len(vs) != 1 || !vs[0].Migrated {
		t.Errorf("GET /v1/vsis: %+v, want migrated", vs)
	}
	out := "outgoing"
	n = log.len()
	if _, err := d.UpdatePort(ctx, "vnet1", api.PortSpec{Migration: &out}); err != nil {
		t.Fatal(err)
	}
	de := log.wait(t, n, "DEASSOC", func(v vepa.VSI, m [16]byte) bool { return v.Mode == vepa.VDPDeassoc })
	if de.ID != id || de.Status != vepa.VDPHintS {
		t.Errorf("leaving: %+v, want DEASSOC with the S bit", de)
	}
	if vs := d.vsis(); len(vs) != 0 {
		t.Errorf("VSIs of an outgoing port: %+v", vs)
	}
	n = log.len()
	if err := d.DeletePort(ctx, "vnet1"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if m := log.len(); m != n {
		t.Errorf("deleting the outgoing port sent %d more VSI TLVs", m-n)
	}
}

// A failed incoming migration: the port is deleted while pre-associated,
// which de-associates without the S bit; a VM that never sends is
// promoted after the timeout; a restarted daemon keeps an incoming port
// incoming.
func TestMigrationFailsOrTimesOut(t *testing.T) {
	r := newRig(t)
	r.opts.PreassociateTimeout = 300 * time.Millisecond
	d := r.start(t)
	ctx := context.Background()
	log := &bridgeLog{}
	withVDP(t, d, log)
	in, owner := "incoming", domUUID
	if _, err := d.AddPort(ctx, api.PortSpec{Name: "vnet1", VLAN: intp(100), MACs: &[]string{"52:54:00:00:00:01"}, Owner: &owner, Migration: &in}); err != nil {
		t.Fatal(err)
	}
	log.wait(t, 0, "PRE-ASSOC", func(v vepa.VSI, _ [16]byte) bool { return v.Mode == vepa.VDPPreAssoc })
	if err := d.DeletePort(ctx, "vnet1"); err != nil {
		t.Fatal(err)
	}
	de := log.wait(t, 0, "DEASSOC", func(v vepa.VSI, _ [16]byte) bool { return v.Mode == vepa.VDPDeassoc })
	if de.Status != 0 {
		t.Errorf("failed migration: DEASSOC status %#x, want no S bit", de.Status)
	}
	// Timeout: nothing from the VM for 300 ms.
	if _, err := d.AddPort(ctx, api.PortSpec{Name: "vnet2", VLAN: intp(100), MACs: &[]string{"52:54:00:00:00:02"}, Owner: &owner, Migration: &in}); err != nil {
		t.Fatal(err)
	}
	n := log.len()
	a := log.wait(t, n, "ASSOC", func(v vepa.VSI, _ [16]byte) bool { return v.Mode == vepa.VDPAssoc })
	if a.Status != vepa.VDPHintM {
		t.Errorf("promoted on timeout: %+v", a)
	}
	// Restart with an incoming port: it stays incoming.
	if _, err := d.AddPort(ctx, api.PortSpec{Name: "vnet3", VLAN: intp(100), Migration: &in}); err != nil {
		t.Fatal(err)
	}
	d.Close()
	r.opts.PreassociateTimeout = -1
	d = r.start(t)
	if p, _ := d.GetPort(ctx, "vnet3"); p.Migration != "incoming" {
		t.Errorf("after a restart: %+v", p)
	}
	if p, _ := d.GetPort(ctx, "vnet2"); p.Migration != "" {
		t.Errorf("vnet2 after a restart: %+v", p)
	}
}

// Promotion by the libvirt follower (vswitchd --libvirt): on libvirt's
// resume of a migrated VM it clears the incoming port's migration
// (UpdatePort migration none), before any frame and long before the
// timeout: the VSI is associated with the M bit at once, the timeout is
// disarmed and GET /v1/vsis says migrated.
func TestMigrationPromotedByUpdate(t *testing.T) {
	r := newRig(t)
	r.opts.PreassociateTimeout = time.Hour
	d := r.start(t)
	ctx := context.Background()
	log := &bridgeLog{}
	withVDP(t, d, log)
	in, none, owner := "incoming", "", domUUID
	if _, err := d.AddPort(ctx, api.PortSpec{Name: "vnet1", VLAN: intp(100), MACs: &[]string{"52:54:00:00:00:01"}, Owner: &owner, Migration: &in}); err != nil {
		t.Fatal(err)
	}
	log.wait(t, 0, "PRE-ASSOC", func(v vepa.VSI, _ [16]byte) bool { return v.Mode == vepa.VDPPreAssoc })
	d.mu.Lock()
	armed := d.incoming["vnet1"] != nil
	d.mu.Unlock()
	if !armed {
		t.Fatal("incoming port not followed")
	}
	n := log.len()
	if p, err := d.UpdatePort(ctx, "vnet1", api.PortSpec{Migration: &none}); err != nil || p.Migration != "" {
		t.Fatalf("promote: %+v, %v", p, err)
	}
	a := log.wait(t, n, "ASSOC", func(v vepa.VSI, _ [16]byte) bool { return v.Mode == vepa.VDPAssoc })
	if a.Status != vepa.VDPHintM {
		t.Errorf("promoted by update: %+v, want ASSOC with the M bit", a)
	}
	d.mu.Lock()
	armed = d.incoming["vnet1"] != nil
	d.mu.Unlock()
	if armed {
		t.Error("the timeout is still armed after the promotion")
	}
	if vs := d.vsis(); len(vs) != 1 || !vs[0].Migrated {
		t.Errorf("GET /v1/vsis: %+v, want migrated", vs)
	}
}
