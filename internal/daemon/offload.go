package daemon

// uplinkCoalescing are the receive offloads that merge frames from the
// wire into super-frames of up to 64 KiB (ethtool -k names). A switch must
// not see them: the uplink queues carry wire-sized frames and would drop a
// merged one as oversize, which stalls every TCP flow towards the VMs (the
// kernel turns LRO off on bridge and bond ports for the same reason).
var uplinkCoalescing = []string{"rx-gro", "rx-lro", "rx-gro-hw", "rx-gro-list", "rx-udp-gro-forwarding"}

// noUplinkCoalescingLocked switches receive coalescing off on the uplink
// until the daemon stops (then it is switched back on); a replaced uplink
// gets the same. d.mu is held (or the daemon is not serving yet).
func (d *Daemon) noUplinkCoalescingLocked() {
	if d.uplinkOffload != nil {
		_ = d.uplinkOffload.Restore() // the old interface, if it is still there
		d.uplinkOffload = nil
	}
	r, err := d.sys.noCoalescing(d.opts.Uplink)
	if r != nil {
		d.uplinkOffload = r
		d.log.Info("switched off receive coalescing on the uplink while vswitchd runs (frames to the VMs stay wire-sized)", "uplink", d.opts.Uplink, "features", r.Names())
	}
	if err != nil {
		d.log.Warn("cannot switch off receive coalescing on the uplink: merged frames to VMs are dropped as malformed (try `ethtool -K "+d.opts.Uplink+" gro off lro off`)", "err", err)
	}
}

// restoreUplinkCoalescingLocked switches back on what
// noUplinkCoalescingLocked switched off. d.mu is held (or the daemon is not
// serving).
func (d *Daemon) restoreUplinkCoalescingLocked() {
	if d.uplinkOffload == nil {
		return
	}
	if err := d.uplinkOffload.Restore(); err != nil {
		d.log.Warn("could not switch the uplink's receive coalescing back on", "uplink", d.opts.Uplink, "err", err)
	}
	d.uplinkOffload = nil
}
