package daemon

import (
	"context"
	"net"
	"slices"
	"time"

	"github.com/vswitch/vswitch/internal/store"
)

// fdbSaveEvery is how often learned entries are written to the store (when
// they changed), so even a daemon killed with SIGKILL restarts knowing where
// the VMs are.
const fdbSaveEvery = 5 * time.Second

// restoreFDB re-learns the entries saved by the previous run, within the
// limits learning observes (datapath.Switch.RestoreFDB): of a state file
// holding more, from an older daemon or another configuration, it restores
// what fits and writes back only that.
func (d *Daemon) restoreFDB() {
	recs, err := d.st.FDB()
	if err != nil {
		d.log.Warn("saved FDB unreadable; starting with an empty one", "err", err)
		return
	}
	var kept []store.FDBRecord
	for _, r := range recs {
		mac, err := net.ParseMAC(r.MAC)
		if err != nil || r.VLAN < 1 || r.VLAN > 4094 {
			continue
		}
		if d.sw.RestoreFDB(uint16(r.VLAN), mac, r.Port) {
			kept = append(kept, r)
		}
	}
	if len(kept) > 0 {
		d.log.Info("restored learned MACs", "entries", len(kept))
	}
	d.lastFDB = recs
	if skipped := len(recs) - len(kept); skipped > 0 {
		d.log.Warn("saved learned MACs not restored (unknown port or VLAN, registered elsewhere, or over the learning limits)", "entries", skipped)
		if err := d.st.SaveFDB(kept); err != nil {
			d.log.Warn("save FDB", "err", err)
			return
		}
		d.lastFDB = kept
	}
}

// saveFDB writes the learned entries if they changed since the last save:
// at most the FDB's limit (--fdb-max), as learning never holds more. While
// the switch's FDBVersion stays where it was at the last save (nothing
// learned, moved, removed or reconfigured) it does nothing at all: listing
// a full FDB is megabytes of garbage, every 5 s.
func (d *Daemon) saveFDB() {
	version := d.sw.FDBVersion()
	if d.fdbListed && version == d.fdbVersion {
		return
	}
	entries := d.sw.LearnedFDB()
	max := d.sw.FDBStats().Limits.Total
	recs := make([]store.FDBRecord, 0, min(len(entries), max))
	for _, e := range entries {
		if len(recs) == max {
			break
		}
		recs = append(recs, store.FDBRecord{VLAN: int(e.VID), MAC: e.MAC.String(), Port: e.Port})
	}
	if !slices.Equal(recs, d.lastFDB) {
		if err := d.st.SaveFDB(recs); err != nil {
			d.log.Warn("save FDB", "err", err)
			return // tried again at the next tick
		}
		d.lastFDB = recs
	}
	d.fdbVersion, d.fdbListed = version, true
}

func (d *Daemon) saveFDBLoop(ctx context.Context) {
	t := time.NewTicker(fdbSaveEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.saveFDB()
		}
	}
}
