package main

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/vlan"
)

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func num(v int) string {
	if v == 0 {
		return "-"
	}
	return strconv.Itoa(v)
}

// vidList formats VIDs compactly ("10,20-30").
func vidList(vids []int) string {
	var set vlan.VIDSet
	for _, v := range vids {
		if v >= 1 && v <= vlan.MaxVID {
			set.Add(uint16(v))
		}
	}
	return set.String()
}

// vlanColumn is "100" for an access port, "trunk 10,20-30 native 10" for a
// trunk, "200 (bridge)" for a port whose VLAN the bridge assigned and
// "- (bridge)" while it has none.
func vlanColumn(p api.Port) string {
	if p.VLANFromBridge {
		return num(p.AssignedVLAN) + " (bridge)"
	}
	if len(p.Trunk) > 0 {
		s := "trunk " + vidList(p.Trunk)
		if p.NativeVLAN != 0 {
			s += " native " + strconv.Itoa(p.NativeVLAN)
		}
		return s
	}
	return num(p.VLAN)
}

func sumDrops(m map[string]uint64) uint64 {
	var n uint64
	for _, c := range m {
		n += c
	}
	return n
}

// describePort is the one-line summary add-port and set-port print.
func describePort(p api.Port) string {
	parts := []string{}
	if len(p.Trunk) > 0 {
		parts = append(parts, "trunk "+vidList(p.Trunk))
		if p.NativeVLAN != 0 {
			parts = append(parts, fmt.Sprintf("native vlan %d", p.NativeVLAN))
		}
	} else if p.VLANFromBridge {
		v := "vlan from the bridge"
		if p.AssignedVLAN != 0 {
			v += fmt.Sprintf(" (assigned %d)", p.AssignedVLAN)
		}
		parts = append(parts, v)
	} else {
		parts = append(parts, fmt.Sprintf("vlan %d", p.VLAN))
	}
	if p.SVID != 0 {
		parts = append(parts, fmt.Sprintf("svid %d", p.SVID))
	}
	if p.PCP != 0 {
		parts = append(parts, fmt.Sprintf("pcp %d", p.PCP))
	}
	if len(p.MACs) > 0 {
		parts = append(parts, "macs "+strings.Join(p.MACs, ","))
	}
	if p.Flood {
		parts = append(parts, "flood")
	}
	if p.Owner != "" {
		parts = append(parts, "owner "+p.Owner)
	}
	if p.MaxMACs != nil {
		parts = append(parts, fmt.Sprintf("max macs %d", *p.MaxMACs))
	}
	if p.VSIType != 0 || p.VSITypeVersion != 0 {
		parts = append(parts, fmt.Sprintf("vsi type %d version %d", p.VSIType, p.VSITypeVersion))
	}
	if p.VSIManager != "" {
		parts = append(parts, "vsi manager "+p.VSIManager)
	}
	if p.InstanceID != "" {
		parts = append(parts, "instance "+p.InstanceID)
	}
	if p.VSIGroup != 0 {
		parts = append(parts, fmt.Sprintf("vsi group %d", p.VSIGroup))
	}
	if p.Migration != "" {
		parts = append(parts, "migration "+p.Migration)
	}
	state := "state " + dash(p.State)
	if r := p.Reason(); r != "" {
		state += " (" + r + ")"
	}
	parts = append(parts, state)
	if p.VDPError != "" {
		parts = append(parts, "no VSI registered: "+p.VDPError)
	}
	return strings.Join(parts, ", ")
}

func writeStatus(w io.Writer, st api.Status) error {
	t := newTable(w)
	row := func(k, v string) { fmt.Fprintf(t, "%s:\t%s\n", k, v) }
	row("version", dash(st.Version))
	if st.Commit != "" {
		row("commit", st.Commit)
	}
	if st.BuildDate != "" {
		row("build date", st.BuildDate)
	}
	row("uplink", fmt.Sprintf("%s (%s)", dash(st.Uplink), dash(st.UplinkState)))
	mode := dash(st.Mode)
	if st.ConfiguredMode != "" && st.ConfiguredMode != st.Mode {
		mode += fmt.Sprintf(" (configured %s)", st.ConfiguredMode)
	}
	row("mode", mode)
	dp := dash(st.Datapath)
	if st.DatapathReason != "" {
		dp += " (" + st.DatapathReason + ")"
	}
	row("datapath", dp)
	if st.PortDatapath != "" {
		row("port datapath", st.PortDatapath)
	}
	if st.DatapathPriority != "" {
		prio := st.DatapathPriority
		if eff := st.DatapathPriorityEffective; eff != "" && eff != prio {
			// What the threads got, then what was asked for and why not.
			prio = fmt.Sprintf("%s, not %s as configured: %s", eff, prio, dash(oneLine(st.DatapathPriorityError)))
		}
		row("datapath threads", prio)
	}
	if b := st.BusyPoll; b != nil {
		row("busy poll", fmt.Sprintf("%d us: %d spins (%d hit, %d missed), %d not needed, %d skipped, %d backed off, %.3f s spun", b.BudgetMicros, b.Spins, b.Hits, b.Misses, b.Ready, b.Skipped, b.BackedOff, b.SpunSeconds))
	}
	if c := st.CPUPoll; c != nil {
		row("cpu poll", fmt.Sprintf("%d pollers: %d wake-ups, %d runs, %d moves, %d hand-offs, %d parks", c.Pollers, c.Wakeups, c.Runs, c.Moves, c.Handoffs, c.Parks))
		if c.PinError != "" {
			row("cpu poll error", c.PinError)
		}
	}
	if st.Relay != nil {
		r := st.Relay.State
		if st.Relay.Peer != "" {
			r += " by " + st.Relay.Peer
		}
		if st.Relay.Updated != "" {
			r += " at " + st.Relay.Updated
		}
		row("reflective relay", r)
	} else {
		row("reflective relay", "-")
	}
	if c := st.CDCP; c != nil {
		row("s-channels (cdcp "+c.Mode+")", cdcpText(c))
	}
	if lv := st.Libvirt; lv != nil {
		v := lv.State + " to " + lv.URI
		if lv.State == "disconnected" {
			v = lv.State + " from " + lv.URI
		}
		if lv.Since != "" {
			v += " since " + lv.Since
		}
		if lv.Reconciled != "" {
			v += fmt.Sprintf(", reconciled at %s (%d domains running; %d reconciles)", lv.Reconciled, lv.Domains, lv.Reconciles)
		}
		v += fmt.Sprintf(", %d events", lv.Events)
		if lv.Error != "" {
			v += ": " + oneLine(lv.Error)
		}
		row("libvirt", v)
	}
	ports := fmt.Sprintf("%d (%d up)", st.Ports, st.PortsUp)
	if st.PortsUnusable > 0 {
		ports += fmt.Sprintf(", %d unusable in the state file (see list-ports)", st.PortsUnusable)
	}
	row("ports", ports)
	if f := st.FDB; f != nil {
		row("learned macs", fmt.Sprintf("%d (at most %d per port by default, %d per VLAN, %d in all)", f.Learned, f.MaxMACsPerPort, f.MaxMACsPerVLAN, f.Max))
	}
	row("uptime", (time.Duration(st.UptimeSeconds) * time.Second).String())
	row("state file", dash(st.StatePath))
	for _, n := range st.StateNotes {
		row("state file note", n)
	}
	return t.Flush()
}

func writePorts(w io.Writer, ps []api.Port) error {
	t := newTable(w)
	fmt.Fprintln(t, "NAME\tVLAN/TRUNK\tSVID\tPCP\tMACS\tSTATE\tRX\tTX\tDROPS\tLEARNED\tMAX_MACS")
	for _, p := range ps {
		macs := "-"
		if len(p.MACs) > 0 {
			macs = strings.Join(p.MACs, ",")
		}
		fmt.Fprintf(t, "%s\t%s\t%s\t%d\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", p.Name, vlanColumn(p), num(p.SVID), p.PCP,
			macs, dash(p.State), p.RxPackets, p.TxPackets, sumDrops(p.Drops), p.LearnedMACs, maxMACsColumn(p))
	}
	if err := t.Flush(); err != nil {
		return err
	}
	// Why a port cannot forward (its problem: an unusable record, CDCP,
	// VDP) and why VDP registers nothing for it, below the table: the
	// reasons are long.
	for _, p := range ps {
		for _, line := range []struct{ what, why string }{{"", p.Reason()}, {"no VSI registered: ", p.VDPError}} {
			if line.why == "" {
				continue
			}
			if _, err := fmt.Fprintf(w, "%s: %s%s\n", p.Name, line.what, line.why); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeDropReasons prints "OWNER REASON COUNT" rows for nonzero counters.
func writeDropReasons(t io.Writer, owner string, drops map[string]uint64) int {
	reasons := make([]string, 0, len(drops))
	for r, c := range drops {
		if c != 0 {
			reasons = append(reasons, r)
		}
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		fmt.Fprintf(t, "%s\t%s\t%d\n", owner, r, drops[r])
	}
	return len(reasons)
}

func writeStats(w io.Writer, st api.Stats) error {
	t := newTable(w)
	fmt.Fprintln(t, "PORT\tSTATE\tRX_PACKETS\tRX_BYTES\tTX_PACKETS\tTX_BYTES\tDROPS")
	for _, p := range st.Ports {
		fmt.Fprintf(t, "%s\t%s\t%d\t%d\t%d\t%d\t%d\n", p.Name, dash(p.State),
			p.RxPackets, p.RxBytes, p.TxPackets, p.TxBytes, sumDrops(p.Drops))
	}
	u := st.Uplink
	fmt.Fprintf(t, "%s\t%s\t%d\t%d\t%d\t%d\t%d\n", dash(u.Name)+" (uplink)", "-",
		u.RxPackets, u.RxBytes, u.TxPackets, u.TxBytes, sumDrops(u.Drops))
	if err := t.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nuplink control frames (LLDP/ECP/VDP): %d", u.Control)
	if c := nonZeroCounters(u.ControlRejected); c != "" {
		fmt.Fprintf(w, ", refused: %s", c) // tagged, or not from the EVB peer
	}
	fmt.Fprint(w, "\n\n")
	t = newTable(w)
	fmt.Fprintln(t, "DROPPED AT\tREASON\tCOUNT")
	n := 0
	for _, p := range st.Ports {
		n += writeDropReasons(t, p.Name, p.Drops)
	}
	n += writeDropReasons(t, dash(u.Name)+" (uplink)", u.Drops)
	if n == 0 {
		fmt.Fprintln(t, "-\tno drops\t0")
	}
	if err := t.Flush(); err != nil {
		return err
	}
	return writeBackendCounters(w, st)
}

// writeBackendCounters prints, after a blank line, one line per port (and
// the uplink) whose backend-specific counters are not all zero, as
// name=value pairs. It prints nothing when every counter is zero, so
// stats output stays as it was for backends without such counters.
func writeBackendCounters(w io.Writer, st api.Stats) error {
	type line struct{ owner, counters string }
	var lines []line
	for _, p := range st.Ports {
		if c := nonZeroCounters(p.Backend); c != "" {
			lines = append(lines, line{p.Name, c})
		}
	}
	if c := nonZeroCounters(st.Uplink.Backend); c != "" {
		lines = append(lines, line{dash(st.Uplink.Name) + " (uplink)", c})
	}
	if len(lines) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	t := newTable(w)
	fmt.Fprintln(t, "COUNTED AT\tBACKEND COUNTERS")
	for _, l := range lines {
		fmt.Fprintf(t, "%s\t%s\n", l.owner, l.counters)
	}
	return t.Flush()
}

// nonZeroCounters formats the non-zero counters of m as "a=1 b=2", sorted
// by name; "" when there are none.
func nonZeroCounters(m map[string]uint64) string {
	names := make([]string, 0, len(m))
	for k, v := range m {
		if v != 0 {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = k + "=" + strconv.FormatUint(m[k], 10)
	}
	return strings.Join(parts, " ")
}

// maxMACsColumn is the port's learned-MAC limit, "default" when it
// follows the daemon's (vswctl status shows it).
func maxMACsColumn(p api.Port) string {
	if p.MaxMACs == nil {
		return "default"
	}
	return strconv.Itoa(*p.MaxMACs)
}

func writePortStats(w io.Writer, p api.Port) error {
	t := newTable(w)
	row := func(k string, v any) { fmt.Fprintf(t, "%s:\t%v\n", k, v) }
	row("port", p.Name)
	row("vlan", vlanColumn(p))
	state := dash(p.State)
	if r := p.Reason(); r != "" {
		state += " (" + r + ")"
	}
	row("state", state)
	row("rx packets", p.RxPackets)
	row("rx bytes", p.RxBytes)
	row("tx packets", p.TxPackets)
	row("tx bytes", p.TxBytes)
	learned := strconv.Itoa(p.LearnedMACs)
	if p.MaxMACs != nil {
		learned += fmt.Sprintf(" (max %d)", *p.MaxMACs)
	}
	row("learned macs", learned)
	row("mac moves", p.MACMoves)
	row("drops", sumDrops(p.Drops))
	reasons := make([]string, 0, len(p.Drops))
	for r := range p.Drops {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		row("  "+r, p.Drops[r])
	}
	if c := nonZeroCounters(p.Backend); c != "" {
		row("backend", c)
	}
	return t.Flush()
}

func writeFDB(w io.Writer, es []api.FDBEntry) error {
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].SVID != es[j].SVID {
			return es[i].SVID < es[j].SVID
		}
		if es[i].VLAN != es[j].VLAN {
			return es[i].VLAN < es[j].VLAN
		}
		return es[i].MAC < es[j].MAC
	})
	// The S-VID column only when an S-channel has entries.
	schan := false
	for _, e := range es {
		schan = schan || e.SVID != 0
	}
	t := newTable(w)
	if schan {
		fmt.Fprint(t, "SVID\t")
	}
	fmt.Fprintln(t, "VLAN\tMAC\tPORT\tTYPE\tAGE")
	for _, e := range es {
		typ, age := "learned", fmt.Sprintf("%ds", e.AgeSec)
		if e.Static {
			typ, age = "static", "-"
		}
		if schan {
			fmt.Fprintf(t, "%s\t", dash(svidString(e.SVID)))
		}
		fmt.Fprintf(t, "%d\t%s\t%s\t%s\t%s\n", e.VLAN, e.MAC, e.Port, typ, age)
	}
	return t.Flush()
}

// svidString is the S-VID as text, "" for none.
func svidString(svid int) string {
	if svid == 0 {
		return ""
	}
	return fmt.Sprint(svid)
}

// writeVSIs is `vswctl vsis`: the columns of before, then the VSI type and
// version, whether the VM migrated here, and why the VSI is not as asked
// (the bridge's reason for a refusal). VLAN is the filters' VIDs ("0 ->
// 200" when the request asked the bridge, which assigned 200; a trunk's
// list); SVID and GROUP columns, before REASON, only when a VSI has one.
func writeVSIs(w io.Writer, vs []api.VSI) error {
	schan, groups := false, false
	for _, v := range vs {
		schan, groups = schan || v.SVID != 0, groups || v.Group != 0
	}
	t := newTable(w)
	fmt.Fprint(t, "PORT\tMAC\tVLAN\tSTATE\tVSIID\tMANAGER\tTYPE\tVERSION\tMIGRATED\t")
	if schan {
		fmt.Fprint(t, "SVID\t")
	}
	if groups {
		fmt.Fprint(t, "GROUP\t")
	}
	fmt.Fprintln(t, "REASON")
	for _, v := range vs {
		migrated := "-"
		if v.Migrated {
			migrated = "yes"
		}
		vid := strconv.Itoa(v.VLAN)
		switch {
		case len(v.VLANs) > 0:
			vid = vidList(v.VLANs)
		case v.AssignedVLAN != 0:
			vid += fmt.Sprintf(" -> %d", v.AssignedVLAN)
		}
		fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t", v.Port, dash(v.MAC), vid, v.State, v.UUID, dash(v.MgrID),
			v.TypeID, v.TypeVer, migrated)
		if schan {
			fmt.Fprintf(t, "%s\t", num(v.SVID))
		}
		if groups {
			g := "-"
			if v.Group != 0 {
				g = strconv.FormatInt(v.Group, 10)
			}
			fmt.Fprintf(t, "%s\t", g)
		}
		fmt.Fprintf(t, "%s\n", dash(v.Reason))
	}
	return t.Flush()
}

// cdcpText shows the S-channels asked for and what the bridge granted:
// "asked 10 20, granted 10 by 02:00:00:00:00:01 (chncap 8)"; a granted
// S-VID the bridge numbers otherwise than asked says so: "granted 10
// (bridge SCID 3)".
func cdcpText(c *api.CDCPStatus) string {
	asked := map[int]int{}
	for _, w := range c.Wanted {
		asked[w.SVID] = w.SCID
	}
	svids := func(ps []api.SChannel) string {
		var out []string
		for _, p := range ps {
			if p.SCID == 1 { // the default S-channel is always there
				continue
			}
			v := strconv.Itoa(p.SVID)
			if a, ok := asked[p.SVID]; ok && a != p.SCID {
				v += fmt.Sprintf(" (bridge SCID %d)", p.SCID)
			}
			out = append(out, v)
		}
		if len(out) == 0 {
			return "none"
		}
		return strings.Join(out, " ")
	}
	v := "asked " + svids(c.Wanted)
	if c.Bridge == "" {
		return v + ", no CDCP bridge heard"
	}
	return fmt.Sprintf("%s, granted %s by %s (chncap %d)", v, svids(c.Granted), c.Bridge, c.ChnCap)
}
