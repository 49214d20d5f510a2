package daemon

import (
	"context"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vswitch/vswitch/internal/libvirt/events"
)

// collector exports port and uplink counters to Prometheus at scrape time.
type collector struct{ d *Daemon }

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
)

// relayStates are the values of api.RelayStatus.State, each exported as a
// series of vswitch_reflective_relay.
var relayStates = []string{"unknown", "granted", "refused"}

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPortPackets, descPortBytes, descPortDrops, descPortBackend, descPortUp, descUpPackets, descUpDrops, descUpBackend, descUpControl, descUpRejected, descRelay, descMode, descPortLearned, descPortMoves, descFDBEntries, descFDBMax, descLibvirt, descLvEvents} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	st, err := c.d.Stats(context.Background())
	if err != nil {
		return
	}
	ctr := prometheus.CounterValue
	for _, p := range st.Ports {
		ch <- prometheus.MustNewConstMetric(descPortPackets, ctr, float64(p.RxPackets), p.Name, "rx")
		ch <- prometheus.MustNewConstMetric(descPortPackets, ctr, float64(p.TxPackets), p.Name, "tx")
		ch <- prometheus.MustNewConstMetric(descPortBytes, ctr, float64(p.RxBytes), p.Name, "rx")
		ch <- prometheus.MustNewConstMetric(descPortBytes, ctr, float64(p.TxBytes), p.Name, "tx")
		for _, r := range sortedNames(p.Drops) {
			ch <- prometheus.MustNewConstMetric(descPortDrops, ctr, float64(p.Drops[r]), p.Name, r)
		}
		for _, n := range sortedNames(p.Backend) {
			ch <- prometheus.MustNewConstMetric(descPortBackend, ctr, float64(p.Backend[n]), p.Name, n)
		}
		up := 0.0
		if p.State == "up" {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descPortUp, prometheus.GaugeValue, up, p.Name, p.State)
		ch <- prometheus.MustNewConstMetric(descPortLearned, prometheus.GaugeValue, float64(p.LearnedMACs), p.Name)
		ch <- prometheus.MustNewConstMetric(descPortMoves, ctr, float64(p.MACMoves), p.Name)
	}
	u := st.Uplink
	ch <- prometheus.MustNewConstMetric(descUpPackets, ctr, float64(u.RxPackets), u.Name, "rx")
	ch <- prometheus.MustNewConstMetric(descUpPackets, ctr, float64(u.TxPackets), u.Name, "tx")
	for _, r := range sortedNames(u.Drops) {
		ch <- prometheus.MustNewConstMetric(descUpDrops, ctr, float64(u.Drops[r]), u.Name, r)
	}
	for _, n := range sortedNames(u.Backend) {
		ch <- prometheus.MustNewConstMetric(descUpBackend, ctr, float64(u.Backend[n]), u.Name, n)
	}
	ch <- prometheus.MustNewConstMetric(descUpControl, ctr, float64(u.Control), u.Name)
	for _, r := range c.d.controlRejects() {
		ch <- prometheus.MustNewConstMetric(descUpRejected, ctr, float64(r.n), u.Name, r.proto, r.reason)
	}
	s, err := c.d.Status(context.Background())
	if err != nil {
		return
	}
	if f := s.FDB; f != nil {
		ch <- prometheus.MustNewConstMetric(descFDBEntries, prometheus.GaugeValue, float64(f.Learned))
		ch <- prometheus.MustNewConstMetric(descFDBMax, prometheus.GaugeValue, float64(f.Max))
	}
	for _, m := range []string{"vepa", "veb"} {
		ch <- prometheus.MustNewConstMetric(descMode, prometheus.GaugeValue, oneIf(s.Mode == m), m, s.ConfiguredMode)
	}
	if s.Relay != nil {
		for _, state := range relayStates {
			ch <- prometheus.MustNewConstMetric(descRelay, prometheus.GaugeValue, oneIf(s.Relay.State == state), u.Name, state)
		}
	}
	if lv := s.Libvirt; lv != nil {
		ch <- prometheus.MustNewConstMetric(descLibvirt, prometheus.GaugeValue, oneIf(lv.State == events.StateConnected), lv.URI)
		ch <- prometheus.MustNewConstMetric(descLvEvents, ctr, float64(lv.Events), lv.URI)
	}
}

func oneIf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (d *Daemon) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{d}, evbCollector{d})
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
