package main

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/vepa"
)

func (a *app) lldpCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "lldp",
		Aliases: []string{"neighbors"},
		Short:   "Show the adjacent EVB bridge, the EVB TLVs, the timers in use and the ECP/VDP counters (802.1Qbg)",
		Long: `Show what vswitchd's EVB station knows of the uplink's nearest-customer-bridge LLDP agent:
the bridge it follows (chassis and port ID, system name, TTL), the EVB TLV the bridge sends and
the one vswitchd sends, decoded field by field, the ECP and VDP timers in use (each the larger of
vswitchd's --evb-* value and the bridge's, unless a ROL bit says otherwise) and the LLDP, ECP and
VDP counters.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var l api.LLDP
			printed, err := a.call(cmd.Context(), http.MethodGet, "/v1/lldp", nil, &l)
			if err != nil || printed {
				return err
			}
			return writeLLDP(a.stdout, l)
		},
	}
}

// writeLLDP is `vswctl lldp`: the bridge, then a table of both EVB TLVs,
// a table of the timers, then the counters.
func writeLLDP(w io.Writer, l api.LLDP) error {
	t := newTable(w)
	row := func(k, v string) { fmt.Fprintf(t, "%s:\t%s\n", k, v) }
	row("uplink", dash(l.Uplink))
	if !l.Station {
		row("EVB station", "off (vswitchd --lldp-interval 0), or waiting for the uplink")
		return t.Flush()
	}
	if r := l.Relay; r != nil {
		v := r.State
		if r.Peer != "" {
			v += " by " + r.Peer
		}
		if r.Updated != "" {
			v += " at " + r.Updated
		}
		row("reflective relay", v)
	}
	if p := l.Peer; p != nil {
		row("bridge", fmt.Sprintf("chassis %s (%s), port %s (%s), from %s", p.ChassisID, p.ChassisIDSubtype, p.PortID, p.PortIDSubtype, p.MAC))
		if p.SystemName != "" {
			row("system name", p.SystemName)
		}
		if p.SystemDescription != "" {
			row("system description", p.SystemDescription)
		}
		if p.PortDescription != "" {
			row("port description", p.PortDescription)
		}
		row("ttl", fmt.Sprintf("%ds, %ds left, last seen %s", p.TTL, p.TTLLeft, p.LastSeen))
	} else {
		row("bridge", "none heard (or its TTL ran out)")
	}
	if err := t.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w)
	t = newTable(w)
	fmt.Fprintln(t, "EVB TLV\tBRIDGE STATUS\tSTATION STATUS\tRRSTAT\tMODE\tR\tRTE\tRWD\tRKA\tRAW")
	tlvRow := func(who string, x *api.EVBTLV) {
		rol := func(v int, on bool) string {
			if on {
				return strconv.Itoa(v) + " (rol)"
			}
			return strconv.Itoa(v)
		}
		fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", who, dash(strings.Join(x.BridgeStatus, ",")), dash(strings.Join(x.StationStatus, ",")),
			x.RRStat, x.Mode, x.R, x.RTE, rol(x.RWD, x.ROLRWD), rol(x.RKA, x.ROLRKA), x.Raw)
	}
	if p := l.Peer; p != nil && p.EVB != nil {
		tlvRow("bridge", p.EVB)
	}
	if l.Local != nil {
		tlvRow("local", &l.Local.EVB)
	}
	if err := t.Flush(); err != nil {
		return err
	}

	if tm := l.Timers; tm != nil {
		fmt.Fprintln(w)
		t = newTable(w)
		fmt.Fprintln(t, "TIMER\tIN USE\tFROM\tLOCAL\tBRIDGE\tMEANS")
		local := func(v int, follow bool) string {
			if follow {
				return vepa.Remote
			}
			return strconv.Itoa(v)
		}
		var lr, lrte, lrwd, lrka, br, brte, brwd, brka = "-", "-", "-", "-", "-", "-", "-", "-"
		if x := l.Local; x != nil {
			lr, lrte, lrwd, lrka = strconv.Itoa(x.EVB.R), strconv.Itoa(x.EVB.RTE), local(x.EVB.RWD, x.FollowRWD), local(x.EVB.RKA, x.FollowRKA)
		}
		if p := l.Peer; p != nil && p.EVB != nil {
			br, brte, brwd, brka = strconv.Itoa(p.EVB.R), strconv.Itoa(p.EVB.RTE), strconv.Itoa(p.EVB.RWD), strconv.Itoa(p.EVB.RKA)
		}
		clamped := func(param string) string {
			for _, c := range tm.Clamped {
				if c.Param == param {
					return fmt.Sprintf("; clamped: %d negotiated, out of vswitchd's bounds", c.Negotiated)
				}
			}
			return ""
		}
		fmt.Fprintf(t, "R\t%d\t%s\t%s\t%s\t%d tries at most\n", tm.R, tm.RFrom, lr, br, tm.R+1)
		fmt.Fprintf(t, "RTE\t%d\t%s\t%s\t%s\tECP ack timeout %s%s\n", tm.RTE, tm.RTEFrom, lrte, brte, usString(tm.ECPAckTimeoutUS), clamped("rte"))
		fmt.Fprintf(t, "RWD\t%d\t%s\t%s\t%s\tresource wait %s, response wait %s\n", tm.RWD, tm.RWDFrom, lrwd, brwd, usString(tm.ResourceWaitUS), usString(tm.ResponseWaitUS))
		fmt.Fprintf(t, "RKA\t%d\t%s\t%s\t%s\tkeep-alive %s (the bridge drops a VSI after %s)%s\n", tm.RKA, tm.RKAFrom, lrka, brka, usString(tm.KeepAliveUS), usString(tm.BridgeKeepAliveTimeoutUS), clamped("rka"))
		if err := t.Flush(); err != nil {
			return err
		}
	}

	if c := l.CDCP; c != nil {
		if err := writeCDCPTLVs(w, c); err != nil {
			return err
		}
	}

	fmt.Fprintln(w)
	t = newTable(w)
	if c := l.LLDP; c != nil {
		row("lldp", fmt.Sprintf("sent %d, received %d, bad %d, tagged %d, foreign peer %d, foreign shutdown %d, ignored %d",
			c.Sent, c.Received, c.Bad, c.Tagged, c.ForeignPeer, c.ForeignShutdown, c.Ignored))
	}
	if c := l.CDCP; c != nil {
		row("cdcp", fmt.Sprintf("sent %d, received %d, bad %d, tagged %d, foreign peer %d",
			c.Sent, c.Received, c.Bad, c.Tagged, c.ForeignPeer))
	}
	if len(l.HoldDown) > 0 {
		var parts []string
		for _, h := range l.HoldDown {
			p := fmt.Sprintf("%s %d changes, %d suppressed", h.Kind, h.Changes, h.Suppressed)
			if h.Flapping {
				p += " (flapping: at most one a second)"
			}
			parts = append(parts, p)
		}
		row("hold-down", strings.Join(parts, "; "))
	}
	if c := l.ECP; c != nil {
		row("ecp", fmt.Sprintf("sent %d, acked %d, retransmitted %d, timed out %d, received %d, duplicates %d, bad %d, tagged %d, foreign peer %d",
			c.Sent, c.Acked, c.Retransmitted, c.TimedOut, c.Received, c.Duplicates, c.Bad, c.Tagged, c.ForeignPeer))
	}
	if c := l.VDP; c != nil {
		row("vdp", fmt.Sprintf("associations %d, preassociations %d, keep-alives %d, deassociations %d; acknowledged %d, refused %d, timeouts %d, de-associated by the bridge %d, unacknowledged %d",
			c.Associations, c.PreAssociations, c.KeepAlives, c.Deassociations, c.Acknowledged, c.Refused, c.Timeouts, c.BridgeDeassociations, c.Unacknowledged))
		var states []string
		for _, s := range vepa.VSIStates {
			if n := c.VSIs[s]; n > 0 {
				states = append(states, fmt.Sprintf("%s %d", s, n))
			}
		}
		if len(states) == 0 {
			states = []string{"none"}
		}
		row("vsis", strings.Join(states, ", "))
	}
	return t.Flush()
}

// writeCDCPTLVs is the CDCP part of `vswctl lldp`: the CDCP bridge, then
// a table of its CDCP TLV and ours.
func writeCDCPTLVs(w io.Writer, c *api.LLDPCDCP) error {
	fmt.Fprintln(w)
	t := newTable(w)
	if b := c.Bridge; b != nil {
		fmt.Fprintf(t, "cdcp bridge:\tchassis %s, from %s, ttl %ds, %ds left, last seen %s\n", b.ChassisID, b.MAC, b.TTL, b.TTLLeft, b.LastSeen)
	} else {
		fmt.Fprintf(t, "cdcp bridge:\tnone heard (or its TTL ran out; cdcp %s)\n", c.Mode)
	}
	if err := t.Flush(); err != nil {
		return err
	}
	t = newTable(w)
	fmt.Fprintln(t, "CDCP TLV\tROLE\tSCOMP\tCHNCAP\tPAIRS (SCID/S-VID)")
	tlvRow := func(who string, x *api.CDCPTLV) {
		scomp := "no"
		if x.SComp {
			scomp = "yes"
		}
		var pairs []string
		for _, p := range x.Pairs {
			pairs = append(pairs, fmt.Sprintf("%d/%d", p.SCID, p.SVID))
		}
		fmt.Fprintf(t, "%s\t%s\t%s\t%d\t%s\n", who, x.Role, scomp, x.ChnCap, dash(strings.Join(pairs, " ")))
	}
	if b := c.Bridge; b != nil {
		tlvRow("bridge", &b.TLV)
	}
	if c.Local != nil {
		tlvRow("local", c.Local)
	}
	return t.Flush()
}

// usString shows microseconds as a duration: to the microsecond under a
// second, to the millisecond above.
func usString(us int64) string {
	d := time.Duration(us) * time.Microsecond
	if d >= time.Second {
		d = d.Round(time.Millisecond)
	}
	return d.String()
}
