package main

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/vswitch/vswitch/pkg/vepa"
)

// The EVB timer flags: defaults are lldpad's; each value is checked against
// its field's width and "remote" is taken for RWD and RKA only, before the
// daemon starts (exit 2, one line naming the flag).
func TestEVBFlags(t *testing.T) {
	e, err := evbFlags{"3", "8", "20", "20"}.local()
	if err != nil || *e != vepa.DefaultLocal {
		t.Errorf("defaults: %+v, %v; want %+v", e, err, vepa.DefaultLocal)
	}
	e, err = evbFlags{"7", "31", "remote", "0"}.local()
	if err != nil || *e != (vepa.EVB{R: 7, RTE: 31, ROLRWD: true, RKA: 0}) {
		t.Errorf("7 31 remote 0: %+v, %v", e, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--evb-r", "8"}, `vswitchd: invalid --evb-r: invalid EVB R "8": the ECP retry count is 0-7`},
		{[]string{"--evb-r", "remote"}, `invalid --evb-r: invalid EVB R "remote"`},
		{[]string{"--evb-rte", "32"}, `invalid --evb-rte: invalid EVB RTE "32": an exponent 0-31`},
		{[]string{"--evb-rte", "remote"}, `invalid --evb-rte: invalid EVB RTE "remote"`},
		{[]string{"--evb-rwd", "-1"}, `invalid --evb-rwd: invalid EVB RWD "-1": an exponent 0-31 (10 µs × 2^RWD), or remote to use the bridge's`},
		{[]string{"--evb-rka", "10s"}, `invalid --evb-rka: invalid EVB RKA "10s"`},
		{[]string{"--evb-rka", ""}, `invalid --evb-rka: invalid EVB RKA ""`},
	} {
		var stderr bytes.Buffer
		if code := run(append(tc.args, "--uplink", "eth0", "--config="), io.Discard, &stderr); code != 2 {
			t.Errorf("%v: exit %d, want 2 (stderr %q)", tc.args, code, stderr.String())
		}
		if !strings.Contains(stderr.String(), tc.want) || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("%v: stderr %q, want one line with %q", tc.args, stderr.String(), tc.want)
		}
	}
	var stdout bytes.Buffer
	run([]string{"-h"}, &stdout, io.Discard)
	for _, f := range []string{"evb-r ", "evb-rte", "evb-rwd", "evb-rka"} {
		if !strings.Contains(stdout.String(), f) {
			t.Errorf("help does not mention --%s", f)
		}
	}
}
