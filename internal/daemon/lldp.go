package daemon

import (
	"context"
	"encoding/hex"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/vepa"
)

// The EVB station's timers and the operator's view of it (GET /v1/lldp,
// vswctl lldp, the vswitch_ecp_*, vswitch_vdp_*, vswitch_evb_timer_seconds
// and vswitch_reflective_relay_state series; VSIs per state are
// vswitch_vsis, in metrics.go).

// evbLocal is the station's timer proposals: --evb-r, --evb-rte,
// --evb-rwd, --evb-rka, or lldpad's defaults.
func (d *Daemon) evbLocal() vepa.EVB {
	if d.opts.EVBLocal != nil {
		return *d.opts.EVBLocal
	}
	return vepa.DefaultLocal
}

// timersChanged hands the timers the EVB station negotiated to VDP (and
// its ECP). It reads them afresh rather than trusting its argument:
// changes reported by two goroutines (a received LLDPDU, an expiry) may
// arrive out of order. runVDP sets them under d.mu too.
func (d *Daemon) timersChanged(vepa.NegotiatedTimers) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st, v := d.evb.Load(), d.vdp.Load()
	if st == nil || v == nil {
		return
	}
	v.SetTimers(st.Timers().Timers)
}

// LLDP implements api.Service: GET /v1/lldp.
func (d *Daemon) LLDP(ctx context.Context) (api.LLDP, error) {
	out := api.LLDP{Uplink: d.opts.Uplink}
	st := d.evb.Load()
	if st == nil {
		return out, nil
	}
	out.Station = true
	out.Relay = d.relayStatus()
	r := st.Relay()
	if n := r.Neighbor; n != nil {
		left := time.Until(n.Expires())
		p := &api.LLDPPeer{MAC: r.PeerMAC.String(),
			ChassisID: n.ChassisID, ChassisIDSubtype: vepa.ChassisSubtypeName(n.ChassisSubtype),
			PortID: n.PortID, PortIDSubtype: vepa.PortSubtypeName(n.PortSubtype),
			SystemName: n.SystemName, SystemDescription: n.SystemDescription, PortDescription: n.PortDescription,
			TTL: int(n.TTL), TTLLeft: int(max(0, (left+time.Second-1)/time.Second)), LastSeen: n.LastSeen.UTC().Format(time.RFC3339)}
		if r.Bridge != nil {
			t := evbTLV(*r.Bridge)
			p.EVB = &t
		}
		out.Peer = p
	}
	own, local := st.LLDPDU(), d.evbLocal()
	interval := d.opts.LLDPInterval
	if interval <= 0 {
		interval = vepa.DefaultInterval
	}
	out.Local = &api.LLDPLocal{ChassisID: vepa.RenderID(own.ChassisID, true, false), PortID: vepa.RenderID(own.PortID, true, false),
		TTL: int(own.TTL), IntervalSeconds: int(interval / time.Second), EVB: evbTLV(*own.EVB), FollowRWD: local.ROLRWD, FollowRKA: local.ROLRKA}
	out.Timers = evbTimers(r.Timers)
	out.LLDP = &api.LLDPCounters{Sent: r.Sent, Received: r.Received, Bad: r.Bad, Tagged: r.Tagged, ForeignPeer: r.Foreign, ForeignShutdown: r.ForeignShutdown,
		Ignored: r.Ignored}
	hold := func(kind string, h vepa.HoldDown) api.HoldDown {
		return api.HoldDown{Kind: kind, Changes: h.Changes, Suppressed: h.Suppressed, Flapping: h.Flapping}
	}
	out.HoldDown = []api.HoldDown{hold("relay", r.RelayHold), hold("timers", r.TimersHold)}
	if c := d.cdcp.Load(); c != nil {
		out.CDCP = d.cdcpLLDP(c)
		out.HoldDown = append(out.HoldDown, hold("cdcp", c.State().Hold))
	}
	var e vepa.ECPStats
	var v vepa.VDPStats
	states := map[string]int{}
	for _, s := range vepa.VSIStates {
		states[s] = 0
	}
	if vs := d.vdp.Load(); vs != nil {
		e, v = vs.ECPStats(), vs.Stats()
		for _, x := range vs.VSIs() {
			states[x.State]++
		}
	}
	out.ECP = &api.ECPCounters{Sent: e.Sent, Retransmitted: e.Retransmitted, Acked: e.Acked, TimedOut: e.Failed, Received: e.Received,
		Duplicates: e.Duplicates, Bad: e.Bad, Tagged: e.Tagged, ForeignPeer: e.Foreign}
	out.VDP = &api.VDPCounters{Associations: v.Associations, PreAssociations: v.PreAssociations, KeepAlives: v.KeepAlives,
		Deassociations: v.Deassociations, Acknowledged: v.Acknowledged, Refused: v.Refused, Timeouts: v.Timeouts,
		BridgeDeassociations: v.BridgeDeassociations, Unacknowledged: v.Unacknowledged, VSIs: states, Unsolicited: v.Unsolicited}
	return out, nil
}

// evbModes and rrStats name the EVB TLV's mode and RRSTAT values
// (802.1Qbg-2012 D.2.12).
var (
	evbModes = [4]string{"not supported", "bridge", "station", "reserved"}
	rrStats  = [4]string{"no", "yes", "reserved", "unknown"}
)

// evbTLV decodes an EVB TLV for the API, field by field. Raw is the TLV
// as decoded (bits the standard reserves are not kept).
func evbTLV(e vepa.EVB) api.EVBTLV {
	t := api.EVBTLV{Raw: hex.EncodeToString(e.Append(nil)[4:]), BridgeStatus: []string{}, StationStatus: []string{},
		RRStat: rrStats[e.RRStat()], Mode: evbModes[e.Mode&3],
		R: int(e.R), RTE: int(e.RTE), RWD: int(e.RWD), RKA: int(e.RKA), ROLRWD: e.ROLRWD, ROLRKA: e.ROLRKA}
	for _, b := range []struct {
		bit  uint8
		name string
	}{{vepa.BridgeBGID, "bgid"}, {vepa.BridgeRRCAP, "rrcap"}, {vepa.BridgeRRCTR, "rrctr"}} {
		if e.BridgeStatus&b.bit != 0 {
			t.BridgeStatus = append(t.BridgeStatus, b.name)
		}
	}
	for _, b := range []struct {
		bit  uint8
		name string
	}{{vepa.StationSGID, "sgid"}, {vepa.StationRRREQ, "rrreq"}} {
		if e.StationStatus&b.bit != 0 {
			t.StationStatus = append(t.StationStatus, b.name)
		}
	}
	return t
}

func evbTimers(n vepa.NegotiatedTimers) *api.EVBTimers {
	us := func(d time.Duration) int64 { return int64(d / time.Microsecond) }
	t := &api.EVBTimers{R: int(n.R), RTE: int(n.RTE), RWD: int(n.RWD), RKA: int(n.RKA),
		RFrom: n.RFrom, RTEFrom: n.RTEFrom, RWDFrom: n.RWDFrom, RKAFrom: n.RKAFrom,
		ECPAckTimeoutUS: us(n.ECPAckTimeout()), ResourceWaitUS: us(n.ResourceWait()), ResponseWaitUS: us(n.ResponseWait()),
		KeepAliveUS: us(n.KeepAlive()), BridgeKeepAliveTimeoutUS: us(n.BridgeKeepAliveTimeout())}
	for _, c := range n.Clamps() {
		t.Clamped = append(t.Clamped, api.EVBTimerClamp{Param: strings.ToLower(c.Param), Negotiated: int(c.Negotiated), InUse: int(c.InUse)})
	}
	return t
}

// evbCollector exports the EVB station's state to Prometheus at scrape
// time (none of it while the station is off).
type evbCollector struct{ d *Daemon }

var (
	descRelayState  = prometheus.NewDesc("vswitch_reflective_relay_state", "The 802.1Qbg reflective relay state as a number: 0 unknown, 1 granted, 2 refused (vswitch_reflective_relay has one series per state); absent when the EVB station is off.", []string{"uplink"}, nil)
	descECPRequests = prometheus.NewDesc("vswitch_ecp_requests_total", "ECP requests (VDP PDUs) sent to the bridge, first transmissions only.", []string{"uplink"}, nil)
	descECPRetrans  = prometheus.NewDesc("vswitch_ecp_retransmissions_total", "ECP requests sent again because no acknowledgement came within the ECP timer (10 us x 2^RTE).", []string{"uplink"}, nil)
	descECPTimeouts = prometheus.NewDesc("vswitch_ecp_timeouts_total", "ECP requests given up: not acknowledged after R retries.", []string{"uplink"}, nil)
	descECPDups     = prometheus.NewDesc("vswitch_ecp_duplicates_total", "ECP requests from the bridge received again (its retransmission after our acknowledgement was lost): acknowledged, not passed up.", []string{"uplink"}, nil)
	descVDPRequests = prometheus.NewDesc("vswitch_vdp_requests_total", "VDP requests sent per kind: associate, preassociate (first requests and re-sends of unanswered ones), keepalive, deassociate.", []string{"kind"}, nil)
	descVDPAnswers  = prometheus.NewDesc("vswitch_vdp_answers_total", "What became of VDP requests: acknowledged, refused (an error status), timeout (no answer within the response wait delay), bridge_deassociated (the bridge dropped a VSI), unsolicited (an answer to no request: ignored).", []string{"result"}, nil)
	descEVBTimer    = prometheus.NewDesc("vswitch_evb_timer_seconds", "The 802.1Qbg timers in use (negotiated with the bridge): ecp_ack (RTE), resource_wait (RWD), response_wait, keepalive (RKA).", []string{"timer"}, nil)
	descHoldChanges = prometheus.NewDesc("vswitch_evb_bridge_changes_total", "Changes of the adjacent bridge's word per kind: relay (reflective relay state, peer, BGID), timers, cdcp (CDCP grants).", []string{"kind"}, nil)
	descHoldSupp    = prometheus.NewDesc("vswitch_evb_bridge_changes_suppressed_total", "Changes of the bridge's word never applied by the flap hold-down (at most 5 at once, then one a second per kind; overtaken within the hold, or undone).", []string{"kind"}, nil)
	descHoldFlap    = prometheus.NewDesc("vswitch_evb_bridge_flapping", "1 while the bridge's word of this kind flaps (changes are being held down), else 0.", []string{"kind"}, nil)
	descCDCPWanted  = prometheus.NewDesc("vswitch_cdcp_schannels_wanted", "S-channels the ports use (S-VIDs, the default S-channel not counted) that the CDCP agent asks the bridge for; absent with --cdcp off.", []string{"uplink"}, nil)
	descCDCPGranted = prometheus.NewDesc("vswitch_cdcp_schannels_granted", "Of the S-channels the ports use, those the CDCP bridge's answer grants (their S-VID in it, under any SCID).", []string{"uplink"}, nil)
	descCDCPHeld    = prometheus.NewDesc("vswitch_cdcp_schannels_held", "Of the S-channels the ports use, those that carry nothing now (not granted, or no CDCP answer with --cdcp on): their ports are down.", []string{"uplink"}, nil)
)

func (c evbCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRelayState, descECPRequests, descECPRetrans, descECPTimeouts, descECPDups, descVDPRequests, descVDPAnswers, descEVBTimer,
		descHoldChanges, descHoldSupp, descHoldFlap, descCDCPWanted, descCDCPGranted, descCDCPHeld} {
		ch <- d
	}
}

func (c evbCollector) Collect(ch chan<- prometheus.Metric) {
	l, err := c.d.LLDP(context.Background())
	if err != nil || !l.Station {
		return
	}
	gauge, ctr := prometheus.GaugeValue, prometheus.CounterValue
	if l.Relay != nil {
		if i := slices.Index(relayStates, l.Relay.State); i >= 0 {
			ch <- prometheus.MustNewConstMetric(descRelayState, gauge, float64(i), l.Uplink)
		}
	}
	e, v := l.ECP, l.VDP
	ch <- prometheus.MustNewConstMetric(descECPRequests, ctr, float64(e.Sent), l.Uplink)
	ch <- prometheus.MustNewConstMetric(descECPRetrans, ctr, float64(e.Retransmitted), l.Uplink)
	ch <- prometheus.MustNewConstMetric(descECPTimeouts, ctr, float64(e.TimedOut), l.Uplink)
	ch <- prometheus.MustNewConstMetric(descECPDups, ctr, float64(e.Duplicates), l.Uplink)
	for _, k := range []struct {
		kind string
		n    uint64
	}{{"associate", v.Associations}, {"preassociate", v.PreAssociations}, {"keepalive", v.KeepAlives}, {"deassociate", v.Deassociations}} {
		ch <- prometheus.MustNewConstMetric(descVDPRequests, ctr, float64(k.n), k.kind)
	}
	for _, r := range []struct {
		result string
		n      uint64
	}{{"acknowledged", v.Acknowledged}, {"refused", v.Refused}, {"timeout", v.Timeouts}, {"bridge_deassociated", v.BridgeDeassociations}, {"unsolicited", v.Unsolicited}} {
		ch <- prometheus.MustNewConstMetric(descVDPAnswers, ctr, float64(r.n), r.result)
	}
	t := l.Timers
	for _, x := range []struct {
		timer string
		us    int64
	}{{"ecp_ack", t.ECPAckTimeoutUS}, {"resource_wait", t.ResourceWaitUS}, {"response_wait", t.ResponseWaitUS}, {"keepalive", t.KeepAliveUS}} {
		ch <- prometheus.MustNewConstMetric(descEVBTimer, gauge, float64(x.us)/1e6, x.timer)
	}
	for _, h := range l.HoldDown {
		flapping := 0.0
		if h.Flapping {
			flapping = 1
		}
		ch <- prometheus.MustNewConstMetric(descHoldChanges, ctr, float64(h.Changes), h.Kind)
		ch <- prometheus.MustNewConstMetric(descHoldSupp, ctr, float64(h.Suppressed), h.Kind)
		ch <- prometheus.MustNewConstMetric(descHoldFlap, gauge, flapping, h.Kind)
	}
	if c := c.d.cdcpStatus(); c != nil {
		granted, held := 0, 0
		for _, x := range c.Channels {
			if x.Granted {
				granted++
			}
			if x.Reason != "" {
				held++
			}
		}
		ch <- prometheus.MustNewConstMetric(descCDCPWanted, gauge, float64(len(c.Channels)), l.Uplink)
		ch <- prometheus.MustNewConstMetric(descCDCPGranted, gauge, float64(granted), l.Uplink)
		ch <- prometheus.MustNewConstMetric(descCDCPHeld, gauge, float64(held), l.Uplink)
	}
}
