package daemon

import (
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/datapath"
	"github.com/vswitch/vswitch/pkg/vepa"
)

// runEVB runs the control plane on the uplink until ctx ends: the
// goroutine that takes the control frames the datapath received
// (control.go), the EVB station (LLDP, nearest-customer-bridge agent) and,
// from it, VSI registration (runVDP). Both stations transmit through the
// datapath (Switch.SendControl). At the end the station tells the bridge
// it is leaving.
func (d *Daemon) runEVB(ctx context.Context) {
	rxDone := make(chan struct{})
	go func() { defer close(rxDone); d.ctlQueue.run(ctx, d.controlFrame) }()
	defer func() { <-rxDone }()
	if d.opts.LLDPInterval < 0 {
		return
	}
	var mac net.HardwareAddr
	for warned := false; ; warned = true { // the uplink may be gone right now
		l, err := d.sys.links.Link(d.opts.Uplink)
		if err == nil && len(l.HardwareAddr) == 6 {
			mac = l.HardwareAddr
			break
		}
		if !warned {
			d.log.Warn("EVB station waits for the uplink", "uplink", d.opts.Uplink, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
	st, err := vepa.NewStation(vepa.StationConfig{
		MAC: mac, Send: d.sw.SendControl, RequestRelay: d.mode == datapath.ModeVEPA, GroupIDs: true,
		Interval: d.opts.LLDPInterval, Local: d.evbLocal(), OnChange: d.relayChanged, OnTimers: d.timersChanged, Logger: d.log,
	})
	if err != nil {
		d.log.Error("EVB station not started", "err", err)
		return
	}
	d.evb.Store(st)
	cdcpDone := d.startCDCP(ctx, mac)
	defer func() { <-cdcpDone }()
	vdpDone := make(chan struct{})
	go func() { defer close(vdpDone); d.runVDP(ctx, mac) }()
	defer func() { <-vdpDone }()
	st.Run(ctx)
	if err := st.Shutdown(); err != nil {
		d.log.Debug("shutdown LLDPDU not sent", "err", err)
	}
}

// relayChanged follows the bridge's answer: with VEPA configured, a bridge
// that refuses reflective relay makes the switch fall back to VEB (local
// switching), and a grant, or a bridge gone, brings VEPA back. The
// station's hold-down (vepa/holddown.go) calls it at most once a second
// for a bridge that flaps; meanwhile (Flapping) its lines are logged at
// debug: the station logs the episode.
func (d *Daemon) relayChanged(r vepa.Relay) {
	d.mu.Lock()
	defer d.mu.Unlock()
	info, warn := slog.LevelInfo, slog.LevelWarn
	if r.RelayHold.Flapping {
		info, warn = slog.LevelDebug, slog.LevelDebug
	}
	d.log.Log(context.Background(), info, "reflective relay", "state", r.State, "bridge", r.Peer)
	if v := d.vdp.Load(); v != nil {
		v.SetGroups(bridgeGroups(r)) // first: the requests SetBridge lets go know whether group IDs may go
		v.SetBridge(r.PeerMAC)       // VDP talks only to an EVB bridge, ECP only with its address
	}
	if d.mode != datapath.ModeVEPA {
		return
	}
	want := datapath.ModeVEPA
	if r.State == vepa.RelayRefused {
		want = datapath.ModeVEB
	}
	if d.sw.Mode() == want {
		return
	}
	d.sw.SetMode(want)
	if want == datapath.ModeVEB {
		d.log.Log(context.Background(), warn, "the adjacent bridge refuses reflective relay: switching VM to VM traffic locally (VEB) until it grants it", "bridge", r.Peer)
	} else {
		d.log.Log(context.Background(), info, "back to VEPA forwarding", "relay", r.State)
	}
}

// relayStatus is the station's state for the API (nil when it is off).
func (d *Daemon) relayStatus() *api.RelayStatus {
	st := d.evb.Load()
	if st == nil {
		return nil
	}
	r := st.Relay()
	return &api.RelayStatus{State: r.State, Peer: r.Peer, Updated: r.Updated.UTC().Format(time.RFC3339)}
}
