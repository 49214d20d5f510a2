package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"time"

	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/vepa"
)

// S-channels and CDCP (IEEE 802.1Qbg-2012 clause 42). A port with an S-VID
// sits on that S-channel; with CDCP the station asks the adjacent bridge
// for each S-channel its ports use, and a port whose S-channel the bridge
// did not grant carries nothing: it is detached from the datapath (state
// down) and its problem says why, until the bridge grants it. Nor does VDP
// register its VSIs there meanwhile (holdVDPChannelsLocked): they wait,
// and are registered once the S-channel is granted.
//
//	--cdcp auto (default)  ask; follow the answer of a bridge that speaks
//	                       CDCP; with none (a bridge without CDCP, lldpad
//	                       included, or its answer's TTL ran out) S-channels
//	                       are static, as configured
//	--cdcp on              S-channels need the bridge's grant: without a
//	                       CDCP answer every S-channel port is down
//	--cdcp off             no CDCP: S-channels are static
//
// CDCP rides on LLDP: with the EVB station off (--lldp-interval 0) it is
// off too. The decision per S-VID is vepa.CDCPState.Channel's.

// CDCP modes (Options.CDCP, vswitchd --cdcp).
const (
	CDCPAuto = "auto"
	CDCPOn   = "on"
	CDCPOff  = "off"
)

// CDCPModes lists the values of --cdcp.
var CDCPModes = []string{CDCPAuto, CDCPOn, CDCPOff}

// CheckCDCP checks a --cdcp value ("" is auto) against the LLDP interval
// (negative: no EVB station, so no LLDP for CDCP to ride on).
func CheckCDCP(mode string, lldpInterval bool) error {
	if mode != "" && !slices.Contains(CDCPModes, mode) {
		return fmt.Errorf("invalid --cdcp %q: use auto, on or off", mode)
	}
	if mode == CDCPOn && !lldpInterval {
		return fmt.Errorf("--cdcp on needs LLDP: CDCP rides on it; give --lldp-interval a duration")
	}
	return nil
}

func (d *Daemon) cdcpMode() string {
	if d.opts.CDCP == "" {
		return CDCPAuto
	}
	return d.opts.CDCP
}

// startCDCP runs the station's CDCP agent (vepa.CDCPStation) on the uplink
// until ctx ends, unless CDCP is off; the channel is closed when it has
// stopped (at once when off).
func (d *Daemon) startCDCP(ctx context.Context, mac net.HardwareAddr) <-chan struct{} {
	done := make(chan struct{})
	if d.cdcpMode() == CDCPOff {
		close(done)
		return done
	}
	st, err := vepa.NewCDCPStation(vepa.CDCPConfig{MAC: mac, Send: d.sw.SendControl, Interval: d.opts.LLDPInterval,
		Required: d.cdcpMode() == CDCPOn, OnChange: d.cdcpChanged, Logger: d.log})
	if err != nil {
		d.log.Error("CDCP not started", "err", err)
		close(done)
		return done
	}
	d.mu.Lock()
	d.cdcp.Store(st)
	d.syncChannelsLocked()
	d.mu.Unlock()
	go func() {
		defer close(done)
		st.Run(ctx)
		if err := st.Shutdown(); err != nil {
			d.log.Debug("CDCP shutdown LLDPDU not sent", "err", err)
		}
	}()
	return done
}

// cdcpChanged follows the bridge's CDCP answer: every S-channel port is
// attached or detached as its S-channel is granted or not.
//
// The agent's hold-down (vepa/holddown.go) calls it at most once a second
// for a bridge that flaps; meanwhile (Flapping) its lines, and the ports',
// are logged at debug: the agent logs the episode.
func (d *Daemon) cdcpChanged(st vepa.CDCPState) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.log.Log(context.Background(), cdcpLevel(st, slog.LevelInfo), "CDCP", "bridge", st.Peer, "granted", fmt.Sprint(st.Granted), "wanted", fmt.Sprint(st.Wanted))
	for name := range d.chanSVID {
		d.syncChannelPortLocked(name)
	}
	d.holdVDPChannelsLocked()
	d.applyVLANsLocked() // a held port has no VLAN from the bridge either
}

// holdVDPChannelsLocked tells VDP the S-channels of held ports
// (channelProblemLocked): it sends nothing on them, their VSIs waiting
// with the reason, until the bridge grants them; then their VSIs are
// registered at once. d.mu is held.
func (d *Daemon) holdVDPChannelsLocked() {
	v := d.vdp.Load()
	if v == nil {
		return
	}
	held := map[uint16]string{}
	for name, svid := range d.chanSVID {
		if why := d.channelProblemLocked(name); why != "" {
			held[svid] = why
		}
	}
	v.SetHeldChannels(held)
}

// syncChannelsLocked reads the S-VIDs of the stored ports, tells the CDCP
// agent the S-channels to ask for, and re-syncs every port that is or was
// on an S-channel (its S-VID may have changed). d.mu is held.
func (d *Daemon) syncChannelsLocked() {
	ports, _ := d.st.Ports() // unusable records: no port, no S-channel
	old := d.chanSVID
	d.chanSVID = map[string]uint16{}
	var svids []uint16
	for _, p := range ports {
		if p.SVID != 0 {
			d.chanSVID[p.Name] = p.SVID
			svids = append(svids, p.SVID)
		}
	}
	if st := d.cdcp.Load(); st != nil {
		st.SetChannels(svids)
	}
	for name := range old {
		if _, still := d.chanSVID[name]; !still {
			d.syncChannelPortLocked(name)
		}
	}
	for name := range d.chanSVID {
		d.syncChannelPortLocked(name)
	}
	d.holdVDPChannelsLocked()
}

// syncChannelPortLocked attaches or detaches a port as its S-channel
// allows, logging a change. d.mu is held.
func (d *Daemon) syncChannelPortLocked(name string) {
	was := d.sw.Attached(name)
	d.syncPortLocked(name)
	now := d.sw.Attached(name)
	if was == now {
		return
	}
	var st vepa.CDCPState
	if s := d.cdcp.Load(); s != nil {
		st = s.State()
	}
	if why := d.channelProblemLocked(name); was && !now && why != "" {
		d.log.Log(context.Background(), cdcpLevel(st, slog.LevelWarn), "port down: its S-channel is not granted", "port", name, "why", why)
	} else if !was && now && d.chanSVID[name] != 0 {
		args := []any{"port", name, "svid", d.chanSVID[name]}
		if scid, ok := st.SCID(d.chanSVID[name]); ok {
			args = append(args, "bridge_scid", scid)
		}
		d.log.Log(context.Background(), cdcpLevel(st, slog.LevelInfo), "port up: its S-channel is granted", args...)
	}
}

// cdcpLevel is the level of a line about a CDCP change: l, or debug while
// the bridge's grants flap (the agent logs the episode).
func cdcpLevel(st vepa.CDCPState, l slog.Level) slog.Level {
	if st.Hold.Flapping {
		return slog.LevelDebug
	}
	return l
}

// channelProblemLocked says why port name's S-channel may not carry
// traffic now ("": it may, or the port has none). d.mu is held.
func (d *Daemon) channelProblemLocked(name string) string {
	svid, ok := d.chanSVID[name]
	if !ok || d.cdcpMode() == CDCPOff || d.opts.LLDPInterval < 0 {
		return ""
	}
	st := vepa.CDCPState{Required: d.cdcpMode() == CDCPOn} // not running yet
	if s := d.cdcp.Load(); s != nil {
		st = s.State()
	}
	if ok, why := st.Channel(svid); !ok {
		return why
	}
	return ""
}

// withChannelProblemLocked adds a held port's reason to its API view.
// d.mu is held.
func (d *Daemon) withChannelProblemLocked(p api.Port) api.Port {
	if why := d.channelProblemLocked(p.Name); why != "" && p.StateReason == "" {
		p.StateReason = why
	}
	return p
}

// cdcpStatus is the CDCP agent's state for the API (nil when off).
func (d *Daemon) cdcpStatus() *api.CDCPStatus {
	s := d.cdcp.Load()
	if s == nil {
		return nil
	}
	st := s.State()
	out := &api.CDCPStatus{Mode: d.cdcpMode(), Bridge: st.Peer, ChnCap: int(st.ChnCap), Wanted: apiPairs(st.Wanted), Granted: apiPairs(st.Granted)}
	for _, svid := range st.Channels() {
		c := api.CDCPChannel{SVID: int(svid), AskedSCID: int(st.AskedSCID(svid))}
		scid, granted := st.SCID(svid)
		c.SCID, c.Granted = int(scid), granted
		if !granted {
			c.SCID = c.AskedSCID
		}
		if ok, why := st.Channel(svid); !ok {
			c.Reason = why
		}
		out.Channels = append(out.Channels, c)
	}
	return out
}

// apiPairs are SCID/S-VID pairs for the API (never nil).
func apiPairs(ps []vepa.SChannel) []api.SChannel {
	out := make([]api.SChannel, 0, len(ps))
	for _, p := range ps {
		out = append(out, api.SChannel{SCID: int(p.SCID), SVID: int(p.SVID)})
	}
	return out
}

// cdcpTLV decodes a CDCP TLV for the API.
func cdcpTLV(c vepa.CDCP) api.CDCPTLV {
	role := "bridge"
	if c.Role == vepa.CDCPRoleStation {
		role = "station"
	}
	return api.CDCPTLV{Role: role, SComp: c.SComp, ChnCap: int(c.ChnCap), Pairs: apiPairs(c.Pairs)}
}

// cdcpLLDP is the CDCP agent's part of GET /v1/lldp: its counters, the
// bridge it follows with its last TLV, and the TLV vswitchd sends.
func (d *Daemon) cdcpLLDP(s *vepa.CDCPStation) *api.LLDPCDCP {
	cs := s.State()
	out := &api.LLDPCDCP{Mode: d.cdcpMode(), Sent: cs.Sent, Received: cs.Received, Bad: cs.Bad, Tagged: cs.Tagged, ForeignPeer: cs.Foreign}
	if c := s.LLDPDU().CDCP; c != nil {
		t := cdcpTLV(*c)
		out.Local = &t
	}
	if n := cs.Neighbor; n != nil {
		left := time.Until(n.LastSeen.Add(time.Duration(n.TTL) * time.Second))
		out.Bridge = &api.CDCPPeer{MAC: n.MAC.String(), ChassisID: n.ChassisID, TTL: int(n.TTL), TTLLeft: int(max(0, (left+time.Second-1)/time.Second)),
			LastSeen: n.LastSeen.UTC().Format(time.RFC3339), TLV: cdcpTLV(n.TLV)}
	}
	return out
}
