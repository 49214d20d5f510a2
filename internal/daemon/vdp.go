package daemon

import (
	"context"
	"crypto/sha1"
	"errors"
	"net"
	"slices"

	"github.com/vswitch/vswitch/internal/store"
	"github.com/vswitch/vswitch/internal/uuid"
	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/port"
	"github.com/vswitch/vswitch/pkg/vepa"
)

// vdpManager is the VSI manager ID of ports that name none.
const vdpManager = "vswitchd"

// runVDP registers the VMs with the adjacent bridge (VDP over ECP) until ctx
// ends: each port with registered MACs, a VSI group or a VLAN from the
// bridge registers its VSIs (portVSIs), a port on an S-channel on that
// channel. It talks only while the EVB station hears an EVB bridge
// (relayChanged calls SetBridge). ECP frames come from the datapath through
// controlFrame and go out through Switch.SendControl. What the bridge
// answers reaches the ports whose VLAN it assigns through applyVLANsLocked,
// run from a goroutine of its own (the station's OnChange may not take
// d.mu).
func (d *Daemon) runVDP(ctx context.Context, mac net.HardwareAddr) {
	var src [6]byte
	copy(src[:], mac)
	kick := make(chan struct{}, 1)
	st, err := vepa.NewVDPStation(vepa.VDPConfig{MAC: src, Send: d.sw.SendControl, ManagerID: vepa.ManagerID(vdpManager), Logger: d.log,
		OnChange: kicker(kick)})
	if err != nil {
		d.log.Error("VDP not started", "err", err)
		return
	}
	d.serveVDP(ctx, st, kick)
}

// kicker is a VDPConfig.OnChange that never blocks: a change pending in
// kick covers the next.
func kicker(kick chan struct{}) func() {
	return func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
}

// serveVDP makes st the daemon's VDP station, registers the ports' VSIs
// and runs it until ctx ends; a receive on kick (st's OnChange) makes the
// ports whose VLAN the bridge assigns follow its answers.
func (d *Daemon) serveVDP(ctx context.Context, st *vepa.VDPStation, kick <-chan struct{}) {
	applied := make(chan struct{})
	go func() {
		defer close(applied)
		for {
			select {
			case <-ctx.Done():
				return
			case <-kick:
				d.mu.Lock()
				if !d.closed {
					d.applyVLANsLocked()
				}
				d.mu.Unlock()
			}
		}
	}()
	defer func() { <-applied }()
	d.mu.Lock() // relayChanged holds it too: no relay change is lost in between
	d.vdp.Store(st)
	if evb := d.evb.Load(); evb != nil {
		r := evb.Relay()
		st.SetTimers(evb.Timers().Timers) // timersChanged holds d.mu too
		st.SetGroups(bridgeGroups(r))
		st.SetBridge(r.PeerMAC)
	}
	d.holdVDPChannelsLocked() // before the first registrations: none goes out on a held S-channel
	d.syncVSIsLocked()
	d.mu.Unlock()
	st.Run(ctx)
}

// bridgeGroups reports whether the bridge takes group IDs: its EVB TLV set
// BGID (the station sets SGID).
func bridgeGroups(r vepa.Relay) bool {
	return r.Bridge != nil && r.Bridge.BridgeStatus&vepa.BridgeBGID != 0
}

// syncVSIsLocked makes the registered VSIs follow the ports: a port's VSIs
// are pre-associated while it is incoming, associated otherwise (with the
// M bit once it was incoming: its VM migrated here), and de-associated
// with the S bit when it turns outgoing (its VM left); VSIs of ports gone
// are de-associated. Then the ports whose VLAN the bridge assigns follow
// what is registered now (applyVLANsLocked). d.mu is held.
func (d *Daemon) syncVSIsLocked() {
	d.registerVSIsLocked()
	d.applyVLANsLocked()
}

func (d *Daemon) registerVSIsLocked() {
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
	warned := map[string]string{}
	for _, p := range ports {
		vs, err := portVSIs(p)
		if err != nil {
			if d.vdpWarned[p.Name] != err.Error() {
				d.log.Warn("VDP: the port registers no VSI", "port", p.Name, "err", err)
			}
			warned[p.Name] = err.Error()
		}
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
			st.RegisterOn(p.SVID, p.Name, mgr, v)
		}
	}
	d.vdpWarned = warned
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

// portVSIs are the VSIs a port registers (port.Config.RegistersVSIs:
// registered MACs, a VSI group or a VLAN from the bridge; none
// otherwise), or why it registers none (its filters do not fit a VSI
// TLV: port.Config.CheckVDP). Each carries the port's VSI type and
// version; the filter format follows its MACs and group
// (VDPFilterFormat), with an entry per VID (VDPVIDs: the access VLAN, 0
// when the bridge assigns it, or each VID of a trunk) carrying the
// port's PCP and group. A port on an S-channel registers them there
// (RegisterOn). Their VSIIDs:
//
//   - with an instance ID, one VSI of that ID with the filters of every
//     MAC;
//   - else, when the owner is a UUID (the libvirt hook records the
//     domain's), one VSI per MAC whose VSIID is the version 5 UUID of the
//     MAC's text (52:54:00:12:34:56) in the owner's namespace: the same on
//     every host, so the bridge follows the VM when it migrates;
//   - else one VSI per MAC named after the port and the MAC (vsiUUID);
//   - without MACs, one VSI named after the port (vsiUUID with no MAC):
//     host-local, so give such a VM an instance ID to migrate it.
func portVSIs(c port.Config) ([]vepa.VSI, error) {
	if !c.RegistersVSIs() {
		return nil, nil
	}
	if err := c.CheckVDP(); err != nil {
		return nil, err
	}
	base := vepa.VSI{TypeID: c.VSIType, TypeVersion: c.VSITypeVersion, IDFormat: vepa.VSIIDUUID, FilterFormat: c.VDPFilterFormat()}
	vids := c.VDPVIDs()
	filters := func(hw net.HardwareAddr) []vepa.Filter {
		out := make([]vepa.Filter, 0, len(vids))
		for _, vid := range vids {
			out = append(out, vepa.Filter{VID: vid, PCP: c.PCP, MAC: hw, GroupID: c.VSIGroup})
		}
		return out
	}
	if id, err := uuid.Parse(c.InstanceID); err == nil {
		v := base
		v.ID = id
		for _, hw := range c.MACs {
			v.Filters = append(v.Filters, filters(hw)...)
		}
		if len(c.MACs) == 0 {
			v.Filters = filters(nil)
		}
		return []vepa.VSI{v}, nil
	}
	if len(c.MACs) == 0 {
		v := base
		v.ID = vsiUUID(c.Name, nil)
		v.Filters = filters(nil)
		return []vepa.VSI{v}, nil
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
		v.Filters = filters(hw)
		out = append(out, v)
	}
	return out, nil
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
			TypeID: int(v.VSI.TypeID), TypeVer: int(v.VSI.TypeVersion), Reason: v.Reason, Migrated: v.VSI.Status&vepa.VDPHintM != 0,
			SVID: int(v.SVID), FilterFormat: vepa.FilterFormatName(v.VSI.FilterFormat)}
		if fs := v.VSI.Filters; len(fs) > 0 {
			a.VLAN = int(fs[0].VID)
			if len(fs[0].MAC) == 6 {
				a.MAC = fs[0].MAC.String()
			}
			if vepa.GroupFormat(v.VSI.FilterFormat) {
				a.Group = int64(fs[0].GroupID)
			}
			if len(v.Answer) == len(fs) && (fs[0].VID == 0 || vepa.GroupFormat(v.VSI.FilterFormat)) {
				a.AssignedVLAN = int(v.Answer[0].VID)
			}
			for _, f := range fs[1:] {
				if f.VID != fs[0].VID {
					for _, g := range fs {
						a.VLANs = append(a.VLANs, int(g.VID))
					}
					slices.Sort(a.VLANs)
					a.VLANs = slices.Compact(a.VLANs)
					break
				}
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
