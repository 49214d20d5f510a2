package daemon

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"time"

	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/datapath"
	"github.com/vswitch/vswitch/pkg/vepa"
)

// runEVB runs the EVB station (LLDP, nearest-customer-bridge agent) on the
// uplink until ctx ends, then tells the bridge it is leaving.
func (d *Daemon) runEVB(ctx context.Context) {
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
	sock, err := vepa.OpenSocket(d.opts.Uplink, vepa.EtherTypeLLDP)
	if err != nil {
		d.log.Error("EVB station not started", "err", err)
		return
	}
	defer sock.Close()
	st, err := vepa.NewStation(vepa.StationConfig{
		MAC: mac, Send: sock.Send, RequestRelay: d.mode == datapath.ModeVEPA,
		Interval: d.opts.LLDPInterval, Local: vepa.DefaultLocal, OnChange: d.relayChanged, Logger: d.log,
	})
	if err != nil {
		d.log.Error("EVB station not started", "err", err)
		return
	}
	d.evb.Store(st)
	vdpDone := make(chan struct{})
	go func() { defer close(vdpDone); d.runVDP(ctx, mac) }()
	defer func() { <-vdpDone }()
	done := d.readFrames(ctx, sock, "LLDP", st.Handle)
	st.Run(ctx)
	if err := st.Shutdown(); err != nil {
		d.log.Debug("shutdown LLDPDU not sent", "err", err)
	}
	<-done
}

// readFrames hands every frame sock receives to handle until ctx ends or
// the socket closes; the returned channel closes then.
func (d *Daemon) readFrames(ctx context.Context, sock *vepa.Socket, what string, handle func([]byte)) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for ctx.Err() == nil {
			f, err := sock.Read(buf)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil {
				d.log.Warn(what+" receive on the uplink", "err", err)
				time.Sleep(time.Second)
				continue
			}
			if f != nil {
				handle(f)
			}
		}
	}()
	return done
}

// controlFrame takes the control frames the datapath hands over (with an
// AF_PACKET uplink; the XDP program passes them to the stack instead).
// LLDP and ECP belong to the EVB and VDP stations, which read them from
// their own sockets under both datapaths (those are not counted here); the
// rest is counted.
func (d *Daemon) controlFrame(f []byte) {
	if len(f) >= 14 {
		if et := binary.BigEndian.Uint16(f[12:14]); et == vepa.EtherTypeLLDP || et == vepa.EtherTypeECP {
			return
		}
	}
	d.ctlOther.Add(1)
}

// relayChanged follows the bridge's answer: with VEPA configured, a bridge
// that refuses reflective relay makes the switch fall back to VEB (local
// switching), and a grant, or a bridge gone, brings VEPA back.
func (d *Daemon) relayChanged(r vepa.Relay) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.log.Info("reflective relay", "state", r.State, "bridge", r.Peer)
	if v := d.vdp.Load(); v != nil {
		v.SetBridge(r.Peer != "") // VDP talks only to an EVB bridge
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
		d.log.Warn("the adjacent bridge refuses reflective relay: switching VM to VM traffic locally (VEB) until it grants it", "bridge", r.Peer)
	} else {
		d.log.Info("back to VEPA forwarding", "relay", r.State)
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
