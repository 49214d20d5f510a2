package daemon

import (
	"context"
	"crypto/sha1"
	"errors"
	"net"

	"github.com/vswitch/vswitch/internal/store"
	"github.com/vswitch/vswitch/internal/uuid"
	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/port"
	"github.com/vswitch/vswitch/pkg/vepa"
)

// vdpManager is the VSI manager ID of ports that name none.
const vdpManager = "vswitchd"

// runVDP registers the VMs with the adjacent bridge (VDP over ECP) until ctx
// ends: each access port without an S-channel and with registered MACs
// registers its VSIs (portVSIs). It talks only while the EVB station hears
// an EVB bridge (relayChanged calls SetBridge). ECP frames come from the
// datapath through controlFrame and go out through Switch.SendControl.
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
		st.SetTimers(evb.Timers().Timers) // timersChanged holds d.mu too
		st.SetBridge(evb.Relay().PeerMAC)
	}
	d.syncVSIsLocked()
	d.mu.Unlock()
	st.Run(ctx)
}

// syncVSIsLocked makes the registered VSIs follow the ports: a port's VSIs
// are pre-associated while it is incoming, associated otherwise (with the
// M bit once it was incoming: its VM migrated here), and de-associated
// with the S bit when it turns outgoing (its VM left); VSIs of ports gone
// are de-associated. d.mu is held.
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
	want := map[[16]byte]string{} // VSIID -> port
	away := map[[16]byte]bool{}
	for _, p := range ports {
		vs := portVSIs(p)
		if p.Migration == port.MigrationOutgoing {
			for _, v := range vs {
				away[v.ID] = true
			}
			continue
		}
		mgr := managerID(p.VSIManager)
		for _, v := range vs {
			if other, dup := want[v.ID]; dup {
				// Two ports claim one VM identity (an instance ID given
				// twice, or a domain's stale port): the first one keeps it.
				d.log.Warn("VDP: two ports have the same VSIID; only the first is registered", "vsiid", uuid.UUID(v.ID).String(), "registered", other, "skipped", p.Name)
				continue
			}
			want[v.ID] = p.Name
			if p.Migration == port.MigrationIncoming {
				v.Mode = vepa.VDPPreAssoc
			} else if d.migratedIn[p.Name] {
				v.Status = vepa.VDPHintM
			}
			st.Register(p.Name, mgr, v)
		}
	}
	for _, v := range st.VSIs() {
		switch _, ok := want[v.VSI.ID]; {
		case ok:
		case away[v.VSI.ID]:
			st.DeassociateWith(v.VSI.ID, vepa.VDPHintS)
		default:
			st.Deassociate(v.VSI.ID)
		}
	}
}

// portVSIs are the VSIs of an access port without an S-channel (others
// register none, nor does a port without registered MACs): each carries
// the port's VSI type and version and filters of format MAC+VID. Their
// VSIIDs:
//
//   - with an instance ID, one VSI of that ID with a filter per MAC;
//   - else, when the owner is a UUID (the libvirt hook records the
//     domain's), one VSI per MAC whose VSIID is the version 5 UUID of the
//     MAC's text (52:54:00:12:34:56) in the owner's namespace: the same on
//     every host, so the bridge follows the VM when it migrates;
//   - else one VSI per MAC named after the port and the MAC (vsiUUID).
func portVSIs(c port.Config) []vepa.VSI {
	if c.VLAN == 0 || c.SVID != 0 || len(c.MACs) == 0 {
		return nil
	}
	base := vepa.VSI{TypeID: c.VSIType, TypeVersion: c.VSITypeVersion, IDFormat: vepa.VSIIDUUID, FilterFormat: vepa.FilterMACVID}
	filter := func(hw net.HardwareAddr) vepa.Filter { return vepa.Filter{VID: c.VLAN, PCP: c.PCP, MAC: hw} }
	if id, err := uuid.Parse(c.InstanceID); err == nil {
		v := base
		v.ID = id
		for _, hw := range c.MACs {
			v.Filters = append(v.Filters, filter(hw))
		}
		return []vepa.VSI{v}
	}
	owner, err := uuid.Parse(c.Owner)
	out := make([]vepa.VSI, 0, len(c.MACs))
	for _, hw := range c.MACs {
		v := base
		if err == nil && owner != uuid.Nil {
			v.ID = uuid.NameBased(owner, hw.String())
		} else {
			v.ID = vsiUUID(c.Name, hw)
		}
		v.Filters = []vepa.Filter{filter(hw)}
		out = append(out, v)
	}
	return out
}

// managerID is the 16-byte manager ID of a port's manager text ("":
// vswitchd's).
func managerID(text string) [16]byte {
	if text == "" {
		return vepa.ManagerID(vdpManager)
	}
	return port.VSIManagerID(text)
}

// vsis is GET /v1/vsis.
func (d *Daemon) vsis() []api.VSI {
	out := []api.VSI{}
	st := d.vdp.Load()
	if st == nil {
		return out
	}
	for _, v := range st.VSIs() {
		a := api.VSI{Port: v.Key, UUID: uuid.UUID(v.VSI.ID).String(), State: v.State, MgrID: vepa.ManagerText(v.Manager),
			TypeID: int(v.VSI.TypeID), TypeVer: int(v.VSI.TypeVersion), Reason: v.Reason, Migrated: v.VSI.Status&vepa.VDPHintM != 0}
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

// vsiUUID is the VSIID of a port's MAC when neither an instance ID nor an
// owner's UUID names the VM: a name-based (version 5 style, SHA-1) UUID of
// "vswitchd", the port and the MAC, stable across restarts of this host.
func vsiUUID(port string, mac net.HardwareAddr) (id [16]byte) {
	h := sha1.Sum([]byte("vswitchd/" + port + "/" + mac.String()))
	copy(id[:], h[:16])
	id[6] = id[6]&0x0f | 0x50 // version 5
	id[8] = id[8]&0x3f | 0x80 // RFC 4122 variant
	return id
}
