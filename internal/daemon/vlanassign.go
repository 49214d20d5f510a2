package daemon

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/vswitch/vswitch/internal/store"
	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/port"
	"github.com/vswitch/vswitch/pkg/vepa"
)

// This file gives the ports whose VLAN the bridge assigns (vswctl --vlan
// 0: port.Config.BridgeVLAN) the VID the bridge answered with. Their
// record keeps VLAN 0; their VSIs ask with VID 0 (portVSIs), and the
// datapath gets the record with the assigned VID in VLAN (dpConfigLocked),
// or VLAN 0 while there is none: the port then forwards nothing and counts
// its VM's frames as vid_unassigned.
//
//	VDP answer                               port
//	none yet, or no EVB bridge               waiting (reason says which)
//	ACK with VID N (1-4094)                  forwards on N (assigned_vlan N)
//	ACK with VID 0 or 4095, refusal          down, with the bridge's reason
//	different VIDs for the port's VSIs       down, with the VIDs
//	DEASSOC by the bridge, bridge gone       waiting: asked again with VID 0
//	its S-channel not granted (CDCP)         down, with CDCP's reason; VDP
//	                                         sends nothing there until granted
//
// A restarted daemon asks again. applyVLANsLocked runs after every change
// of the ports' VSIs (syncVSIsLocked) and whenever the VDP station reports
// a change (runVDP).

// vlanAssignment is what the bridge assigned to a port: the VID the
// datapath has for it (0: none), and while there is none, whether the
// port is down (the bridge's answer was unusable) or waits, and why.
type vlanAssignment struct {
	vid    uint16
	down   bool
	reason string
}

// state is the port's API state while it has no VID ("" once it has one).
func (a vlanAssignment) state() string {
	switch {
	case a.vid != 0:
		return ""
	case a.down:
		return "down"
	}
	return "waiting"
}

// dpConfigLocked is the datapath's configuration of stored port c: with
// the VID the bridge assigned when its VLAN is the bridge's. d.mu is held.
func (d *Daemon) dpConfigLocked(c port.Config) port.Config {
	if c.BridgeVLAN {
		c.VLAN = d.assigned[c.Name].vid
	}
	return c
}

// assignmentKept reports whether port c, changed from old, keeps the VLAN
// the bridge assigned to old: VDP registers the same VSIs for it, on the
// same S-channel and under the same manager (VDPStation.RegisterOn keeps
// the bridge's answer then), and they stay registered. Any other change
// makes new registrations, whose VLAN the bridge has yet to give: on
// another S-channel the old VID may be another tenant's VLAN.
func assignmentKept(old, c port.Config) bool {
	if !old.BridgeVLAN || !c.BridgeVLAN || old.SVID != c.SVID || managerID(old.VSIManager) != managerID(c.VSIManager) ||
		c.Migration == port.MigrationOutgoing {
		return false
	}
	was, err := portVSIs(old)
	if err != nil {
		return false
	}
	now, err := portVSIs(c)
	return err == nil && reflect.DeepEqual(was, now)
}

// applyVLANsLocked gives every port whose VLAN the bridge assigns the VID
// its VSIs were answered with (assignmentFor), updating the datapath
// where it changed. d.mu is held.
func (d *Daemon) applyVLANsLocked() {
	var bad *store.RecordError
	ports, err := d.st.Ports()
	if err != nil && !errors.As(err, &bad) {
		d.log.Error("VDP: read ports", "err", err)
		return
	}
	var vsis map[string][]vepa.VSIStatus
	st := d.vdp.Load()
	if st != nil {
		vsis = map[string][]vepa.VSIStatus{}
		for _, v := range st.VSIs() {
			vsis[v.Key] = append(vsis[v.Key], v)
		}
	}
	seen := map[string]bool{}
	for _, c := range ports {
		if _, refused := d.refused[c.Name]; !c.BridgeVLAN || refused {
			continue
		}
		seen[c.Name] = true
		a := assignmentFor(c, st != nil, vsis[c.Name])
		if why := d.channelProblemLocked(c.Name); why != "" {
			a = vlanAssignment{down: true, reason: why} // VDP waits for the S-channel (cdcp.go)
		}
		old, had := d.assigned[c.Name]
		d.assigned[c.Name] = a
		if old.vid == a.vid {
			if a.vid == 0 && (!had || old.reason != a.reason) {
				d.log.Info("port waits for the bridge to assign its VLAN", "port", c.Name, "state", a.state(), "why", a.reason)
			}
			continue
		}
		if err := d.sw.UpdatePort(d.dpConfigLocked(c)); err != nil {
			d.log.Error("the bridge's VLAN cannot be applied to the port", "port", c.Name, "vlan", a.vid, "err", err)
			d.assigned[c.Name] = old
			continue
		}
		if a.vid != 0 {
			d.log.Info("port forwards on the VLAN the bridge assigned", "port", c.Name, "vlan", a.vid, "was", old.vid)
		} else {
			d.log.Warn("port lost the VLAN the bridge assigned: it forwards nothing until the bridge assigns one again", "port", c.Name, "was", old.vid, "state", a.state(), "why", a.reason)
		}
	}
	for name := range d.assigned {
		if !seen[name] {
			delete(d.assigned, name)
		}
	}
}

// assignmentFor is the VID the bridge assigned to port c from the state
// of its VSIs (vdp: the VDP station runs). The port's VID is the one
// common to the answers received (a VSI still unanswered does not hold
// the others back); answers that disagree, or a refusal with no answer,
// make the port down.
func assignmentFor(c port.Config, vdp bool, vsis []vepa.VSIStatus) vlanAssignment {
	switch {
	case !vdp:
		return vlanAssignment{reason: "VDP is not running (no EVB station: vswitchd --lldp-interval, or it is starting): nothing asks the bridge for the VLAN"}
	case c.Migration == port.MigrationOutgoing:
		return vlanAssignment{reason: "the VM migrated away: its VSIs are de-associated"}
	case len(vsis) == 0:
		if err := c.CheckVDP(); err != nil {
			return vlanAssignment{down: true, reason: err.Error()}
		}
		return vlanAssignment{reason: "the port has no VSI registered (another port has its VSIID: see the log)"}
	}
	var vids []uint16
	failed, pending := "", ""
	for _, v := range vsis {
		if v.Answer != nil {
			for _, f := range v.Answer {
				vids = append(vids, f.VID)
			}
			continue
		}
		switch v.State {
		case vepa.VSIFailed:
			failed = "the bridge's answer: " + v.Reason
		case vepa.VSIWaiting:
			pending = "no EVB bridge heard on the uplink yet: VDP asks it for the VLAN once there is one"
		default:
			pending = "VDP asked the bridge for the VLAN (VID 0); no answer yet"
			if v.Reason != "" {
				pending += " (" + v.Reason + ")"
			}
		}
	}
	slices.Sort(vids)
	vids = slices.Compact(vids)
	switch {
	case len(vids) == 1:
		return vlanAssignment{vid: vids[0]}
	case len(vids) > 1:
		s := make([]string, len(vids))
		for i, v := range vids {
			s[i] = fmt.Sprint(v)
		}
		return vlanAssignment{down: true, reason: "the bridge assigned different VLANs to the port's VSIs (" + strings.Join(s, ", ") + "); an access port has one"}
	case failed != "":
		return vlanAssignment{down: true, reason: failed}
	}
	return vlanAssignment{reason: pending}
}

// vdpViewLocked adds what VDP did for stored port c to its API object p:
// the VID the bridge assigned and, while there is none, why the port
// waits or is down (in Problem, unless it has a problem already: CDCP's
// hold comes first); and why VDP registers nothing for it when its
// filters do not fit a VSI TLV. d.mu is held.
func (d *Daemon) vdpViewLocked(c port.Config, p *api.Port) {
	if c.RegistersVSIs() {
		if err := c.CheckVDP(); err != nil {
			p.VDPError = err.Error()
		}
	}
	if !c.BridgeVLAN {
		return
	}
	a := d.assigned[c.Name]
	p.AssignedVLAN = int(a.vid)
	if a.vid == 0 && p.State != "absent" && p.StateReason == "" {
		p.StateReason = a.reason
	}
}
