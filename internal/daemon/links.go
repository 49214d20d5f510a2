package daemon

import (
	"context"
	"time"

	"github.com/vswitch/vswitch/internal/netdev"
)

// This file is link following: the datapath's ports and uplink track the
// interfaces a LinkSource reports (netlink in production). A port is
// attached while its interface exists and detached when it goes; a tap
// deleted and created again (a new ifindex) is reattached; when the uplink
// comes back every uplink queue is reopened and every present port
// attached again.

// follow attaches and detaches ports as their interfaces come and go.
func (d *Daemon) follow(ctx context.Context, events <-chan netdev.Event) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			d.linkChanged(ev)
		}
	}
}

// linkChanged applies one link event.
func (d *Daemon) linkChanged(ev netdev.Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if ev.Present {
		d.links[ev.Name] = ev
	} else {
		delete(d.links, ev.Name)
	}
	if ev.Name == d.opts.Uplink {
		d.syncUplinkLocked(ev)
	} else {
		d.syncPortLocked(ev.Name)
	}
}

// syncUplinkLocked follows the uplink: when it is deleted the datapath
// waits (frames to it are counted as tx errors); when an interface of that
// name comes back, every uplink queue is reopened on it. d.mu is held.
func (d *Daemon) syncUplinkLocked(ev netdev.Event) {
	switch {
	case !ev.Present && d.uplinkIndex != 0:
		d.log.Error("uplink disappeared; ports keep their configuration, traffic resumes when it is back", "uplink", ev.Name)
		d.uplinkIndex = 0
	case ev.Present && ev.Index != d.uplinkIndex:
		d.log.Info("uplink is back; reopening its queues", "uplink", ev.Name, "ifindex", ev.Index)
		d.noUplinkCoalescingLocked()
		if err := d.sw.RestartUplink(); err != nil {
			d.log.Error("reopen uplink queues", "uplink", ev.Name, "err", err)
			if !d.sw.UplinkOpen() {
				return
			}
			// the uplink is open; some ports failed to reattach: the sync
			// below tries them again
		}
		d.uplinkIndex = ev.Index
		// Ports whose taps appeared (or were replaced) while the uplink was
		// gone could not attach then: attach every present port now.
		for name := range d.links {
			if name != d.opts.Uplink {
				d.syncPortLocked(name)
			}
		}
		if len(ev.HardwareAddr) == 6 {
			if st := d.evb.Load(); st != nil {
				st.SetMAC(ev.HardwareAddr)
			}
			if st := d.vdp.Load(); st != nil {
				st.SetMAC(ev.HardwareAddr)
			}
			if st := d.cdcp.Load(); st != nil {
				st.SetMAC(ev.HardwareAddr)
			}
		}
	}
}

// syncPortLocked attaches a configured port whose interface exists and
// detaches one whose interface is gone, or whose S-channel the bridge did
// not grant (CDCP, cdcp.go). d.mu is held.
func (d *Daemon) syncPortLocked(name string) {
	if !d.sw.HasPort(name) {
		d.stopAttachRetryLocked(name) // deleted meanwhile
		return
	}
	ev, present := d.links[name]
	attached := d.sw.Attached(name)
	if present && attached && d.portIndex[name] != ev.Index {
		// deleted and created again between two events: the queues are
		// bound to the old interface
		d.sw.Detach(name)
		attached = false
	}
	held := d.channelProblemLocked(name) != "" // its S-channel is not granted (cdcp.go)
	switch {
	case present && !attached && !held:
		if err := d.sw.Attach(name); err != nil {
			d.log.Warn("attach port failed; retrying", "port", name, "err", err, "in", d.retryAttachLocked(name))
			return
		}
		d.portIndex[name] = ev.Index
	case (!present || held) && attached:
		d.sw.Detach(name)
		delete(d.portIndex, name)
	}
	d.stopAttachRetryLocked(name)
}

// Attach retries. An attach can fail for a while (file descriptors or
// memory short, the uplink being replaced) with no link event to come that
// would try again: the port is tried again after firstAttachRetry, then
// twice as long each time up to maxAttachRetry, until it attaches, its
// interface goes or the port is deleted.
const (
	firstAttachRetry = time.Second
	maxAttachRetry   = 30 * time.Second
)

// attachRetry is the pending retry of one port.
type attachRetry struct {
	timer *time.Timer // nil while none is pending
	delay time.Duration
}

// retryAttachLocked schedules the next attempt for name (one at a time)
// and returns its delay. d.mu is held.
func (d *Daemon) retryAttachLocked(name string) time.Duration {
	r := d.retries[name]
	if r == nil {
		r = &attachRetry{delay: d.retryBase}
		if r.delay <= 0 {
			r.delay = firstAttachRetry
		}
		d.retries[name] = r
	}
	if r.timer != nil {
		return r.delay
	}
	delay := r.delay
	r.timer = time.AfterFunc(delay, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.closed || d.retries[name] != r {
			return
		}
		r.timer = nil
		r.delay = min(2*r.delay, maxAttachRetry)
		d.syncPortLocked(name)
	})
	return delay
}

// stopAttachRetryLocked drops name's retry: it attached, or there is
// nothing to attach. d.mu is held.
func (d *Daemon) stopAttachRetryLocked(name string) {
	if r := d.retries[name]; r != nil {
		if r.timer != nil {
			r.timer.Stop()
		}
		delete(d.retries, name)
	}
}

// portState is up|down|absent, or waiting (or down) for a port whose VLAN
// the bridge has not assigned (vlanassign.go).
func (d *Daemon) portStateLocked(name string, attached bool) string {
	ev, present := d.links[name]
	switch {
	case !present:
		return "absent"
	}
	if a, ok := d.assigned[name]; ok && a.vid == 0 {
		return a.state() // waiting for the bridge's VLAN, or down for its answer (vlanassign.go)
	}
	if attached && ev.Up {
		return "up"
	}
	return "down"
}
