package daemon

import (
	"time"

	"github.com/vswitch/vswitch/pkg/port"
)

// This file follows live migration on the destination, as libvirt does
// for macvtap with 802.1Qbg: a port added as incoming (the libvirt hook
// adds it at "start begin" of an incoming migration) has its VSIs
// pre-associated while the VM's memory is copied, and associated with the
// M bit as soon as the VM runs here. That moment is the VM's first frame
// on its tap (QEMU announces the VM's MACs when it resumes it: a RARP, or
// the guest's gratuitous ARP), which the datapath reports
// (Switch.WatchFirstFrame), or, with --libvirt, libvirt's resume of the
// VM after its migration (the follower of internal/libvirt/events clears
// the port's migration through UpdatePort, which counts as a promotion);
// should neither come, the port is promoted after
// Options.PreassociateTimeout. That timeout runs from the port's addition,
// before the memory is copied, so it must exceed the longest migration. The source's part (the S
// bit) is the port turning outgoing: syncVSIsLocked.

// defaultPreassociateTimeout is Options.PreassociateTimeout's default.
const defaultPreassociateTimeout = 5 * time.Minute

// preassociateTimeout is how long an incoming port waits for its VM's
// first frame (0: never promoted on time alone).
func (o *Options) preassociateTimeout() time.Duration {
	switch {
	case o.PreassociateTimeout < 0:
		return 0
	case o.PreassociateTimeout == 0:
		return defaultPreassociateTimeout
	}
	return o.PreassociateTimeout
}

// followMigrationLocked arms or disarms the promotion of port c: watching
// for the VM's first frame and the timer, while it is incoming. d.mu is
// held.
func (d *Daemon) followMigrationLocked(c port.Config) {
	incoming := c.Migration == port.MigrationIncoming
	if err := d.sw.WatchFirstFrame(c.Name, incoming); err != nil {
		d.log.Error("watch for the VM's first frame", "port", c.Name, "err", err)
	}
	t := d.incoming[c.Name]
	switch {
	case incoming && t == nil:
		var timer *time.Timer
		if after := d.opts.preassociateTimeout(); after > 0 {
			name := c.Name
			timer = time.AfterFunc(after, func() { d.promote(name, "no frame from the VM within --preassociate-timeout") })
		}
		d.incoming[c.Name] = &incomingPort{since: time.Now(), timer: timer}
	case !incoming && t != nil:
		d.forgetIncomingLocked(c.Name)
	}
}

// incomingPort is a port waiting for its VM to run here.
type incomingPort struct {
	since time.Time
	timer *time.Timer // nil: no timeout
}

// forgetIncomingLocked stops following an incoming port. d.mu is held.
func (d *Daemon) forgetIncomingLocked(name string) {
	if t := d.incoming[name]; t != nil && t.timer != nil {
		t.timer.Stop()
	}
	delete(d.incoming, name)
}

// firstFrame is the datapath's Config.FirstFrame: it runs on the port's
// worker, so the promotion is handed to a goroutine of its own.
func (d *Daemon) firstFrame(name string) {
	go d.promote(name, "first frame from the VM")
}

// promote ends an incoming port's pre-association: the VM runs here, so
// its VSIs are associated, with the M bit. The port's record loses its
// incoming state (a restarted daemon then associates it at once).
func (d *Daemon) promote(name, why string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	c, err := d.st.Port(name)
	if err != nil || c.Migration != port.MigrationIncoming {
		return // deleted, or promoted meanwhile
	}
	old := c
	c.Migration = port.MigrationNone
	if err := d.st.PutPort(c); err != nil {
		d.log.Error("VM migrated in runs, but its port cannot be saved; VSIs stay pre-associated", "port", name, "err", err)
		return
	}
	if err := d.sw.UpdatePort(d.dpConfigLocked(c)); err != nil {
		if rerr := d.st.PutPort(old); rerr != nil {
			d.log.Error("roll back port in the state file", "port", name, "err", rerr)
		}
		d.log.Error("VM migrated in runs, but its port cannot be updated; VSIs stay pre-associated", "port", name, "err", err)
		return
	}
	waited := time.Duration(0)
	if t := d.incoming[name]; t != nil {
		waited = time.Since(t.since)
	}
	d.forgetIncomingLocked(name)
	d.migratedIn[name] = true
	d.syncVSIsLocked()
	d.log.Info("VM migrated in runs here: its VSIs are associated (M bit)", "port", name, "why", why, "pre-associated_for", waited.Round(time.Millisecond))
}
