package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vswitch/vswitch/internal/libvirt/events"
	"github.com/vswitch/vswitch/internal/version"
	"github.com/vswitch/vswitch/pkg/vepa"
)

// collector exports port and uplink counters to Prometheus at scrape time.
//
// No label takes a value that changes during a series' life: a state is
// exported as one series per possible state (1 for the current one, 0 for
// the others: vswitch_port_state, vswitch_reflective_relay,
// vswitch_forwarding_mode, vswitch_vsis) or as a 1/0 value
// (vswitch_port_oper_up, vswitch_uplink_up), so a change is a new value,
// not a new series. vswitch_port_up{state} predates this rule and is kept
// as it was for the dashboards that use it.
type collector struct {
	d     *Daemon
	build version.Info
}

var (
	descPortPackets = prometheus.NewDesc("vswitch_port_packets_total", "Frames per port and direction (rx: from the VM, tx: to the VM).", []string{"port", "direction"}, nil)
	descPortBytes   = prometheus.NewDesc("vswitch_port_bytes_total", "Bytes per port and direction.", []string{"port", "direction"}, nil)
	descPortDrops   = prometheus.NewDesc("vswitch_port_drops_total", "Dropped frames per port and reason.", []string{"port", "reason"}, nil)
	descPortUp      = prometheus.NewDesc("vswitch_port_up", "1 when the port is attached and its interface is up.", []string{"port", "state"}, nil)
	descUpPackets   = prometheus.NewDesc("vswitch_uplink_packets_total", "Frames on the uplink per direction.", []string{"uplink", "direction"}, nil)
	descUpDrops     = prometheus.NewDesc("vswitch_uplink_drops_total", "Frames from the uplink dropped per reason.", []string{"uplink", "reason"}, nil)
	descPortBackend = prometheus.NewDesc("vswitch_port_backend_total", "Counters only the port's backend keeps (afpacket: gso_segments, checksums_fixed, ...; afxdp: xsk_rx_dropped, ...), per port and counter name.", []string{"port", "counter"}, nil)
	descUpBackend   = prometheus.NewDesc("vswitch_uplink_backend_total", "Counters only the uplink's backend keeps, per counter name (its receive and control-plane queues; the ports' transmit queues count for their ports).", []string{"uplink", "counter"}, nil)
	descUpControl   = prometheus.NewDesc("vswitch_uplink_control_frames_total", "Control frames (link-local group addresses, LLDP, ECP) received on the uplink and handed to the control plane or dropped as control_unhandled/control_overrun.", []string{"uplink"}, nil)
	descUpRejected  = prometheus.NewDesc("vswitch_uplink_control_rejected_total", "LLDP and ECP frames the control plane refused, per protocol (lldp, ecp) and reason (tagged: carried a VLAN tag; foreign_peer: from another bridge than the peer; foreign_shutdown: a shutdown LLDPDU not from the peer).", []string{"uplink", "protocol", "reason"}, nil)
	descRelay       = prometheus.NewDesc("vswitch_reflective_relay", "1 for the current 802.1Qbg reflective relay state (unknown, granted, refused); absent when the EVB station is off.", []string{"uplink", "state"}, nil)
	descLibvirt     = prometheus.NewDesc("vswitch_libvirt_connected", "1 while vswitchd is connected to libvirtd and follows its domain events (--libvirt); absent without --libvirt.", []string{"uri"}, nil)
	descLvEvents    = prometheus.NewDesc("vswitch_libvirt_events_total", "libvirt domain events handled (--libvirt).", []string{"uri"}, nil)
	descMode        = prometheus.NewDesc("vswitch_forwarding_mode", "1 for the forwarding mode in effect (vepa, veb); configured is the mode asked for.", []string{"mode", "configured"}, nil)
	descPortLearned = prometheus.NewDesc("vswitch_port_learned_macs", "MACs the port has in the FDB now (bounded by its max_macs, or --max-macs-per-port).", []string{"port"}, nil)
	descPortMoves   = prometheus.NewDesc("vswitch_port_mac_moves_total", "Learned MACs the port took over from another port (a VM that moved, or a flap; see drop reason mac_move_limit).", []string{"port"}, nil)
	descFDBEntries  = prometheus.NewDesc("vswitch_fdb_entries", "Learned MACs in the FDB (bounded by --fdb-max; registered MACs are not counted).", nil, nil)
	descFDBMax      = prometheus.NewDesc("vswitch_fdb_max_entries", "The FDB's limit of learned MACs (--fdb-max).", nil, nil)
	descBuildInfo   = prometheus.NewDesc("vswitch_build_info", "Always 1; the labels name the running vswitchd's build: its version (git describe), commit, build date and Go toolchain (as --version and GET /v1/status).", []string{"version", "commit", "build_date", "goversion"}, nil)
	descPortOperUp  = prometheus.NewDesc("vswitch_port_oper_up", "1 when the port is attached and its interface is up, else 0: vswitch_port_up without the state label, one series per port for its whole life.", []string{"port"}, nil)
	descPortState   = prometheus.NewDesc("vswitch_port_state", "1 for the port's current state, 0 for the others, every state always present: up (attached, interface up), down (the interface exists but is down or not attached, or the stored port is unusable), absent (no such interface: its VM is not running).", []string{"port", "state"}, nil)
	descUpUp        = prometheus.NewDesc("vswitch_uplink_up", "1 when the uplink interface is present and up, else 0.", []string{"uplink"}, nil)
	descDrops       = prometheus.NewDesc("vswitch_drops_total", "Dropped frames per reason over the whole switch (the uplink, every port and the ports deleted since vswitchd started), every reason present from the start: never goes down while ports come and go, so alert on this one.", []string{"reason"}, nil)
	descUpBytes     = prometheus.NewDesc("vswitch_uplink_bytes_total", "Bytes on the uplink per direction (rx: received from the bridge, tx: sent to it).", []string{"uplink", "direction"}, nil)
	descBusyPolls   = prometheus.NewDesc("vswitch_busy_poll_total", "Spins of the receiving queues' busy poll (--busy-poll) by result: hit (frames came within it: a thread's wake-up spared), miss (none came), ready (no spin: a queue had frames already), skipped (not made: the busy poll had used its tenth of a CPU), backoff (not made: a spin had just missed what came right after it); absent when off.", []string{"result"}, nil)
	descCPUPoll     = prometheus.NewDesc("vswitch_cpu_poll_total", "Work of the CPU pollers (--cpu-poll) by event: wakeup (a poller woke for a queue's frames), run (a batch received by a poller), move (a port's queue moved to the poller of the CPU its VM sends from), handoff (a queue handed to a thread of its own: a stream began, or an error), park (a poller idle for 100 ms parked in the Go netpoller; again at each 500 ms sweep while parked); absent when off.", []string{"event"}, nil)
	descBusySecs    = prometheus.NewDesc("vswitch_busy_poll_seconds_total", "Time the busy poll spun (--busy-poll; wall time, on one CPU at a time); absent when off.", nil, nil)
	descVSIs        = prometheus.NewDesc("vswitch_vsis", "VSIs registered with the adjacent bridge (VDP) per state (waiting, preassociating, preassociated, associating, associated, failed), every state always present; absent when the EVB station is off.", []string{"state"}, nil)
)

// relayStates are the values of api.RelayStatus.State, each exported as a
// series of vswitch_reflective_relay.
var relayStates = []string{"unknown", "granted", "refused"}

// portStates are the values of api.Port.State (portStateLocked), each
// exported as a series of vswitch_port_state.
var portStates = []string{"up", "down", "absent", "waiting"}

// vsiStates are the VDP states of a VSI (api.VSI.State), each exported as
// a series of vswitch_vsis.
var vsiStates = vepa.VSIStates

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPortPackets, descPortBytes, descPortDrops, descPortBackend, descPortUp, descUpPackets, descUpDrops, descUpBackend, descUpControl, descUpRejected, descRelay, descMode, descPortLearned, descPortMoves, descFDBEntries, descFDBMax, descLibvirt, descLvEvents, descBuildInfo, descPortOperUp, descPortState, descUpUp, descDrops, descVSIs, descUpBytes, descBusyPolls, descBusySecs, descCPUPoll} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	gauge, ctr := prometheus.GaugeValue, prometheus.CounterValue
	emit := func(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
		emitMetric(ch, d, t, v, labels...)
	}
	b := c.build
	emit(descBuildInfo, gauge, 1, b.Version, b.Commit, b.BuildDate, b.GoVersion)
	st, err := c.d.Stats(context.Background())
	if err != nil {
		return
	}
	for _, p := range st.Ports {
		emit(descPortPackets, ctr, float64(p.RxPackets), p.Name, "rx")
		emit(descPortPackets, ctr, float64(p.TxPackets), p.Name, "tx")
		emit(descPortBytes, ctr, float64(p.RxBytes), p.Name, "rx")
		emit(descPortBytes, ctr, float64(p.TxBytes), p.Name, "tx")
		for _, r := range sortedNames(p.Drops) {
			emit(descPortDrops, ctr, float64(p.Drops[r]), p.Name, r)
		}
		for _, n := range sortedNames(p.Backend) {
			emit(descPortBackend, ctr, float64(p.Backend[n]), p.Name, n)
		}
		up := oneIf(p.State == "up")
		emit(descPortUp, gauge, up, p.Name, p.State)
		emit(descPortOperUp, gauge, up, p.Name)
		for _, s := range portStates {
			emit(descPortState, gauge, oneIf(p.State == s), p.Name, s)
		}
		emit(descPortLearned, gauge, float64(p.LearnedMACs), p.Name)
		emit(descPortMoves, ctr, float64(p.MACMoves), p.Name)
	}
	u := st.Uplink
	emit(descUpPackets, ctr, float64(u.RxPackets), u.Name, "rx")
	emit(descUpPackets, ctr, float64(u.TxPackets), u.Name, "tx")
	emit(descUpBytes, ctr, float64(u.RxBytes), u.Name, "rx")
	emit(descUpBytes, ctr, float64(u.TxBytes), u.Name, "tx")
	for _, r := range sortedNames(u.Drops) {
		emit(descUpDrops, ctr, float64(u.Drops[r]), u.Name, r)
	}
	for _, n := range sortedNames(u.Backend) {
		emit(descUpBackend, ctr, float64(u.Backend[n]), u.Name, n)
	}
	emit(descUpControl, ctr, float64(u.Control), u.Name)
	for _, r := range c.d.controlRejects() {
		emit(descUpRejected, ctr, float64(r.n), u.Name, r.proto, r.reason)
	}
	drops := c.d.sw.DropTotals()
	for _, r := range sortedNames(drops) {
		emit(descDrops, ctr, float64(drops[r]), r)
	}
	s, err := c.d.Status(context.Background())
	if err != nil {
		return
	}
	emit(descUpUp, gauge, oneIf(s.UplinkState == "up"), s.Uplink)
	if b := s.BusyPoll; b != nil {
		emit(descBusyPolls, ctr, float64(b.Hits), "hit")
		emit(descBusyPolls, ctr, float64(b.Misses), "miss")
		emit(descBusyPolls, ctr, float64(b.Ready), "ready")
		emit(descBusyPolls, ctr, float64(b.Skipped), "skipped")
		emit(descBusyPolls, ctr, float64(b.BackedOff), "backoff")
		emit(descBusySecs, ctr, b.SpunSeconds)
	}
	if p := s.CPUPoll; p != nil {
		emit(descCPUPoll, ctr, float64(p.Wakeups), "wakeup")
		emit(descCPUPoll, ctr, float64(p.Runs), "run")
		emit(descCPUPoll, ctr, float64(p.Moves), "move")
		emit(descCPUPoll, ctr, float64(p.Handoffs), "handoff")
		emit(descCPUPoll, ctr, float64(p.Parks), "park")
	}
	if f := s.FDB; f != nil {
		emit(descFDBEntries, gauge, float64(f.Learned))
		emit(descFDBMax, gauge, float64(f.Max))
	}
	for _, m := range []string{"vepa", "veb"} {
		emit(descMode, gauge, oneIf(s.Mode == m), m, s.ConfiguredMode)
	}
	if s.Relay != nil {
		for _, state := range relayStates {
			emit(descRelay, gauge, oneIf(s.Relay.State == state), u.Name, state)
		}
	}
	if c.d.vdp.Load() != nil {
		n := map[string]int{}
		for _, v := range c.d.vsis() {
			n[v.State]++
		}
		for _, state := range vsiStates {
			emit(descVSIs, gauge, float64(n[state]), state)
			delete(n, state)
		}
		for state, k := range n { // a state this list does not know yet
			emit(descVSIs, gauge, float64(k), state)
		}
	}
	if lv := s.Libvirt; lv != nil {
		emit(descLibvirt, gauge, oneIf(lv.State == events.StateConnected), lv.URI)
		emit(descLvEvents, ctr, float64(lv.Events), lv.URI)
	}
}

// emitMetric sends one sample. A label value that is not UTF-8 (a port
// name from a damaged state file: such a port is listed as down with its
// problem) is sent Go-quoted ("vnet\xff" with the quotes), which no valid
// port name can be, instead of failing the whole scrape.
func emitMetric(ch chan<- prometheus.Metric, d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
	for i, l := range labels {
		if !utf8.ValidString(l) {
			labels[i] = strconv.Quote(l)
		}
	}
	m, err := prometheus.NewConstMetric(d, t, v, labels...)
	if err != nil {
		m = prometheus.NewInvalidMetric(d, err) // the scrape goes on without it (promhttp.ContinueOnError)
	}
	ch <- m
}

func oneIf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// metricsHandler serves GET /metrics: vswitchd's own series (collector),
// the Go runtime's (go_*) and the process's (process_*: CPU, memory, file
// descriptors, start time). A series that cannot be collected is left out
// and logged; the rest is served.
func (d *Daemon) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{d: d, build: d.opts.Build}, evbCollector{d}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, ErrorLog: promLog{d.log}})
}

// promLog is promhttp's error log on the daemon's logger.
type promLog struct{ log *slog.Logger }

func (l promLog) Println(v ...any) { l.log.Warn("metrics: " + fmt.Sprint(v...)) }
