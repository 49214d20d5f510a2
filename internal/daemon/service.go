package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/vswitch/vswitch/internal/store"
	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/datapath"
	"github.com/vswitch/vswitch/pkg/port"
)

// This file is the control API (api.Service): every change is checked by
// the port model (api.PortSpec.Apply), written to the store, then applied
// to the switch, and rolled back in the store when the switch refuses it,
// all under d.mu, so the store and the switch never disagree for long and
// a daemon killed at any point restarts with what it acknowledged.

// Status implements api.Service.
func (d *Daemon) Status(ctx context.Context) (api.Status, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ps := d.sw.Ports()
	_, bad, err := d.st.Records()
	if err != nil {
		return api.Status{}, err
	}
	up := 0
	for _, p := range ps {
		if d.portStateLocked(p.Config.Name, p.Attached) == "up" {
			up++
		}
	}
	ustate := "absent"
	if ev, ok := d.links[d.opts.Uplink]; ok {
		ustate = "down"
		if ev.Up {
			ustate = "up"
		}
	}
	st := api.Status{
		Version: d.opts.Build.Version, Commit: d.opts.Build.Commit, BuildDate: d.opts.Build.BuildDate, GoVersion: d.opts.Build.GoVersion, Uplink: d.opts.Uplink, UplinkState: ustate,
		Mode: d.sw.Mode().String(), ConfiguredMode: d.mode.String(),
		Datapath: d.sw.Backend(), DatapathReason: d.reason, PortDatapath: d.sw.PortBackend(), DatapathPriority: d.opts.Priority.String(),
		Ports: len(ps), PortsUp: up, UptimeSeconds: int64(time.Since(d.start) / time.Second),
		StatePath: d.st.Path(), PortsUnusable: len(bad) + len(d.refused), StateNotes: d.st.Notes(), Relay: d.relayStatus(), FDB: d.fdbStatus(),
	}
	st.CDCP = d.cdcpStatus()
	if d.busy != nil {
		b := d.busy.Stats()
		st.BusyPoll = &api.BusyPollStatus{BudgetMicros: d.busy.Budget().Microseconds(), Spins: b.Spins(), Hits: b.Hits, Misses: b.Misses,
			Ready: b.Ready, Skipped: b.Skipped, BackedOff: b.BackedOff, SpunSeconds: b.Spun.Seconds()}
	}
	if p, ok := d.sw.PollStats(); ok {
		st.CPUPoll = &api.CPUPollStatus{Pollers: p.Pollers, Wakeups: p.Wakeups, Runs: p.Runs, Moves: p.Moves, Handoffs: p.Handoffs, Parks: p.Parks, PinError: p.PinErr}
	}
	st.DatapathPriorityEffective = st.DatapathPriority
	if err := d.sw.PriorityErr(); err != nil {
		st.DatapathPriorityEffective, st.DatapathPriorityError = "normal", err.Error()
	}
	if d.libvirt != nil {
		lv := d.libvirt.Status()
		st.Libvirt = &lv
	}
	return st, nil
}

// apiPortLocked is the API's view of stored port c: its state, counters
// and, while it cannot forward, the one reason in StateReason: its S-channel
// is not granted (CDCP, cdcp.go), else what VDP says of the VLAN the
// bridge assigns (vlanassign.go). d.mu is held.
func (d *Daemon) apiPortLocked(c port.Config, attached bool, counters api.PortCounters) api.Port {
	p := d.withChannelProblemLocked(api.NewPort(c, d.portStateLocked(c.Name, attached), counters))
	d.vdpViewLocked(c, &p)
	return p
}

func (d *Daemon) portLocked(c port.Config) api.Port {
	if p, ok := d.refusedPortLocked(c); ok {
		return p
	}
	for _, p := range d.sw.Ports() {
		if p.Config.Name == c.Name {
			return d.apiPortLocked(c, p.Attached, portCounters(p))
		}
	}
	return d.apiPortLocked(c, false, api.PortCounters{})
}

// refusedPortLocked is the API's view of a stored port the datapath
// refused at start: down, with the reason. d.mu is held.
func (d *Daemon) refusedPortLocked(c port.Config) (api.Port, bool) {
	err, ok := d.refused[c.Name]
	if !ok {
		return api.Port{}, false
	}
	p := api.NewPort(c, "down", api.PortCounters{})
	p.Problem = fmt.Sprintf("the datapath refused this stored port at start: %v; change it (vswctl set-port) or delete it (vswctl del-port)", err)
	p.StateReason = p.Problem
	return p, true
}

// ListPorts implements api.Service.
func (d *Daemon) ListPorts(ctx context.Context) ([]api.Port, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	cs, bad, err := d.st.Records()
	if err != nil {
		return nil, err
	}
	stats := map[string]datapath.PortStatus{}
	for _, p := range d.sw.Ports() {
		stats[p.Config.Name] = p
	}
	out := make([]api.Port, 0, len(cs)+len(bad))
	for _, c := range cs {
		if p, ok := d.refusedPortLocked(c); ok {
			out = append(out, p)
			continue
		}
		s := stats[c.Name]
		out = append(out, d.apiPortLocked(c, s.Attached, portCounters(s)))
	}
	// An unusable record is a port that is down, with the reason: kept in
	// the file until it is deleted (del-port) or replaced (add-port).
	for _, e := range bad {
		out = append(out, api.Port{Name: e.Port, State: "down", Problem: e.Error(), StateReason: e.Error(), Drops: map[string]uint64{}})
	}
	slices.SortFunc(out, func(a, b api.Port) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// storedPortLocked reads a port's configuration, mapping a missing one to
// the API's not_found error. d.mu is held.
func (d *Daemon) storedPortLocked(name string) (port.Config, error) {
	c, err := d.st.Port(name)
	if errors.Is(err, port.ErrNotFound) {
		return c, port.NotFound(name)
	}
	var bad *store.RecordError
	if errors.As(err, &bad) {
		// The state file's fault, not the request's: its own code (the
		// port error inside would otherwise read as a bad request).
		return c, api.NewError(api.CodeBadRecord, bad.Error())
	}
	return c, err
}

// GetPort implements api.Service.
func (d *Daemon) GetPort(ctx context.Context, name string) (api.Port, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, err := d.storedPortLocked(name)
	if err != nil {
		return api.Port{}, err
	}
	return d.portLocked(c), nil
}

// AddPort implements api.Service.
func (d *Daemon) AddPort(ctx context.Context, spec api.PortSpec) (api.Port, error) {
	c, err := spec.Apply(port.Config{})
	if err != nil {
		return api.Port{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	// An unusable record of that name is replaced (its message says so).
	_, err = d.st.Port(c.Name)
	if err == nil {
		return api.Port{}, port.Exists(c.Name)
	}
	var unusable *store.RecordError
	errors.As(err, &unusable)
	if err := d.st.PutPort(c); err != nil {
		return api.Port{}, fmt.Errorf("save port %s: %w", c.Name, err)
	}
	if err := d.sw.AddPort(c); err != nil {
		d.st.DeletePort(c.Name)
		if unusable != nil {
			d.log.Warn("the unusable record was replaced by a port the datapath refused: neither is kept", "port", c.Name, "record", unusable)
		}
		if errors.Is(err, port.ErrExists) {
			return api.Port{}, port.Exists(c.Name)
		}
		return api.Port{}, api.NewError(api.CodeInvalidBody, err.Error())
	}
	d.syncChannelsLocked()
	d.syncPortLocked(c.Name)
	d.followMigrationLocked(c)
	d.syncVSIsLocked()
	d.log.Info("port added", "port", c.Name, "vlan", c.VLAN, "trunk", c.Trunk.String(), "svid", c.SVID, "migration", c.Migration)
	return d.portLocked(c), nil
}

// UpdatePort implements api.Service.
func (d *Daemon) UpdatePort(ctx context.Context, name string, spec api.PortSpec) (api.Port, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	old, err := d.storedPortLocked(name)
	if err != nil {
		return api.Port{}, err
	}
	c, err := spec.Apply(old) // refuses a rename too
	if err != nil {
		return api.Port{}, err
	}
	if err := d.st.PutPort(c); err != nil {
		return api.Port{}, fmt.Errorf("save port %s: %w", name, err)
	}
	update := d.sw.UpdatePort
	if _, ok := d.refused[name]; ok {
		update = d.sw.AddPort // not in the datapath yet: the change may make it fit
	}
	assigned, hadAssigned := d.assigned[name]
	if c.BridgeVLAN && assigned.vid != 0 && !assignmentKept(old, c) {
		// New registrations: the datapath must not have the changed port
		// on the VID the bridge gave the old ones (vlanassign.go).
		d.assigned[name] = vlanAssignment{reason: "the port's VSIs changed: VDP asks the bridge for the VLAN again"}
	}
	if err := update(d.dpConfigLocked(c)); err != nil {
		if rerr := d.st.PutPort(old); rerr != nil {
			d.log.Error("roll back port in the state file", "port", name, "err", rerr)
		}
		if hadAssigned {
			d.assigned[name] = assigned
		}
		return api.Port{}, api.NewError(api.CodeInvalidBody, err.Error())
	}
	if _, ok := d.refused[name]; ok {
		delete(d.refused, name)
		d.syncPortLocked(name)
	}
	d.syncChannelsLocked()
	if old.Migration == port.MigrationIncoming && c.Migration == port.MigrationNone {
		d.migratedIn[name] = true // promoted by hand: its VM migrated here all the same
	}
	d.followMigrationLocked(c)
	d.syncVSIsLocked()
	d.log.Info("port updated", "port", name, "migration", c.Migration)
	return d.portLocked(c), nil
}

// DeletePort implements api.Service.
func (d *Daemon) DeletePort(ctx context.Context, name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.st.DeletePort(name); errors.Is(err, port.ErrNotFound) {
		return port.NotFound(name)
	} else if err != nil {
		return fmt.Errorf("delete port %s: %w", name, err)
	}
	delete(d.refused, name)
	if err := d.sw.DeletePort(name); err != nil && !errors.Is(err, port.ErrNotFound) {
		return err
	}
	d.forgetIncomingLocked(name)
	delete(d.migratedIn, name)
	d.syncChannelsLocked()
	d.syncVSIsLocked()
	d.log.Info("port deleted", "port", name)
	return nil
}

// FDB implements api.Service.
func (d *Daemon) FDB(ctx context.Context, vid int) ([]api.FDBEntry, error) {
	if vid < 0 || vid > 4094 {
		return nil, api.NewError(api.CodeInvalidVLAN, fmt.Sprintf("invalid VLAN %d: must be 1-4094", vid))
	}
	if n := d.sw.FDBSize(uint16(vid)); n > api.MaxFDBEntries {
		return nil, api.NewError(api.CodeTooManyEntries, fmt.Sprintf("the FDB holds %d entries (a registered MAC counts once per VLAN of its port), more than %d in one answer: list one VLAN (vswctl fdb --vlan VID)", n, api.MaxFDBEntries))
	}
	out := []api.FDBEntry{}
	for _, e := range d.sw.FDBEntries(uint16(vid)) {
		out = append(out, api.FDBEntry{VLAN: int(e.VID), SVID: int(e.SVID), MAC: e.MAC.String(), Port: e.Port, Static: e.Static, AgeSec: int(e.Age / time.Second)})
	}
	return out, nil
}

// Stats implements api.Service.
func (d *Daemon) Stats(ctx context.Context) (api.Stats, error) {
	ports, err := d.ListPorts(ctx)
	if err != nil {
		return api.Stats{}, err
	}
	u := d.sw.UplinkCounters()
	st := api.Stats{Ports: ports, Drops: map[string]uint64{}, Uplink: api.UplinkStats{
		Name: d.opts.Uplink, RxPackets: u.RxPackets, RxBytes: u.RxBytes, TxPackets: u.TxPackets, TxBytes: u.TxBytes, Drops: u.Drops, Backend: u.Backend,
	}}
	st.Uplink.Control = u.Control
	if rs := d.controlRejects(); rs != nil {
		st.Uplink.ControlRejected = map[string]uint64{}
		for _, r := range rs {
			st.Uplink.ControlRejected[r.key()] = r.n
		}
	}
	for k, v := range u.Drops {
		st.Drops[k] += v
	}
	for _, p := range ports {
		for k, v := range p.Drops {
			st.Drops[k] += v
		}
	}
	return st, nil
}

// VSIs implements api.Service: the VSIs registered with the bridge (VDP).
func (d *Daemon) VSIs(ctx context.Context) ([]api.VSI, error) { return d.vsis(), nil }

// sortedNames is used by metrics.
func sortedNames(m map[string]uint64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// portCounters is what the API shows of a port's datapath counters.
func portCounters(p datapath.PortStatus) api.PortCounters {
	c := p.Counters
	return api.PortCounters{RxPackets: c.RxPackets, RxBytes: c.RxBytes, TxPackets: c.TxPackets, TxBytes: c.TxBytes,
		Drops: c.Drops, Backend: c.Backend, LearnedMACs: p.LearnedMACs, MACMoves: c.MACMoves}
}

// fdbStatus is what the API shows of the FDB.
func (d *Daemon) fdbStatus() *api.FDBStatus {
	st := d.sw.FDBStats()
	return &api.FDBStatus{Learned: st.Learned, MaxMACsPerPort: st.Limits.PerPort, MaxMACsPerVLAN: st.Limits.PerVLAN, Max: st.Limits.Total}
}
