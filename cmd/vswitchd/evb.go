package main

import "github.com/vswitch/vswitch/pkg/vepa"

// evbFlags are --evb-r, --evb-rte, --evb-rwd and --evb-rka: the EVB
// station's timer proposals (802.1Qbg's EVB TLV), each in its field's
// range, RWD and RKA also "remote" (use the bridge's value).
type evbFlags struct{ r, rte, rwd, rka string }

// local parses the flags into the station's local TLV (vepa.ParseTimer's
// rules); the error names the flag (a flagError: a config file's line is
// added to it).
func (f evbFlags) local() (*vepa.EVB, error) {
	e := vepa.DefaultLocal
	for _, p := range []struct{ flag, param, v string }{{"evb-r", "R", f.r}, {"evb-rte", "RTE", f.rte}, {"evb-rwd", "RWD", f.rwd}, {"evb-rka", "RKA", f.rka}} {
		if err := e.SetTimer(p.param, p.v); err != nil {
			return nil, badFlag(p.flag, "invalid --%s: %v", p.flag, err)
		}
	}
	return &e, nil
}
