package daemon

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"net"

	"github.com/vswitch/vswitch/internal/store"
	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/vepa"
)

// vdpManager is the VSI manager ID vswitchd registers its VSIs under.
const vdpManager = "vswitchd"

// runVDP registers the VMs with the adjacent bridge (VDP over ECP) until ctx
// ends: each access port without an S-channel registers one VSI per MAC
// given with --mac (a UUID VSIID named after port and MAC, filter MAC+VID). It talks only while
// the EVB station hears an EVB bridge (relayChanged calls SetBridge).
// ECP frames come from the datapath through controlFrame and go out through
// Switch.SendControl.
func (d *Daemon) runVDP(ctx context.Context, mac net.HardwareAddr) {
	var src [6]byte
	copy(src[:], mac)
	st, err := vepa.NewVDPStation(vepa.VDPConfig{MAC: src, Send: d.sw.SendControl, ManagerID: vepa.ManagerID(vdpManager), Logger: d.log})
	if err != nil {
		d.log.Error("VDP not started", "err", err)
		return
	}
	d.mu.Lock() // relayChanged holds it too: no relay change is lost in between
	d.vdp.Store(st)
	if evb := d.evb.Load(); evb != nil {
		st.SetBridge(evb.Relay().PeerMAC)
	}
	d.syncVSIsLocked()
	d.mu.Unlock()
	st.Run(ctx)
}

// syncVSIsLocked makes the registered VSIs follow the ports. d.mu is held.
func (d *Daemon) syncVSIsLocked() {
	st := d.vdp.Load()
	if st == nil {
		return
	}
	var bad *store.RecordError
	ports, err := d.st.Ports()
	if err != nil && !errors.As(err, &bad) { // unusable records: skipped at start, they register nothing
		d.log.Error("VDP: read ports", "err", err)
		return
	}
	// One VSI per port and MAC, so the same MAC on two ports (VLANs) is two
	// VSIs. Its VSIID is a name-based UUID of the two: stable across
	// restarts, so the bridge sees the same VSI again.
	want := map[[16]byte]bool{}
	for _, p := range ports {
		if p.VLAN == 0 || p.SVID != 0 {
			continue // trunks and S-channel ports register nothing (yet)
		}
		for _, hw := range p.MACs {
			v := vepa.VSI{IDFormat: vepa.VSIIDUUID, ID: vsiUUID(p.Name, hw), FilterFormat: vepa.FilterMACVID,
				Filters: []vepa.Filter{{VID: p.VLAN, PCP: p.PCP, MAC: hw}}}
			want[v.ID] = true
			st.Associate(p.Name, v)
		}
	}
	for _, v := range st.VSIs() {
		if !want[v.VSI.ID] {
			st.Deassociate(v.VSI.ID)
		}
	}
}

// vsis is GET /v1/vsis.
func (d *Daemon) vsis() []api.VSI {
	out := []api.VSI{}
	st := d.vdp.Load()
	if st == nil {
		return out
	}
	for _, v := range st.VSIs() {
		a := api.VSI{Port: v.Key, UUID: uuidString(v.VSI.ID), State: v.State, MgrID: vdpManager,
			TypeID: int(v.VSI.TypeID), TypeVer: int(v.VSI.TypeVersion)}
		if len(v.VSI.Filters) > 0 {
			a.VLAN = int(v.VSI.Filters[0].VID)
			if f := v.VSI.Filters[0]; len(f.MAC) == 6 {
				a.MAC = f.MAC.String()
			}
		}
		out = append(out, a)
	}
	return out
}

// vsiUUID is the VSIID of a port's MAC: a name-based (version 5, SHA-1)
// UUID of "vswitchd", the port and the MAC.
func vsiUUID(port string, mac net.HardwareAddr) (id [16]byte) {
	h := sha1.Sum([]byte("vswitchd/" + port + "/" + mac.String()))
	copy(id[:], h[:16])
	id[6] = id[6]&0x0f | 0x50 // version 5
	id[8] = id[8]&0x3f | 0x80 // RFC 4122 variant
	return id
}

// uuidString shows a 16-byte VSIID as a UUID (8-4-4-4-12 hex digits).
func uuidString(b [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
