package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestUsageErrorsExit2 checks that every bad command line is refused with
// exit code 2 and a one-line message naming the flag, before the daemon
// touches the state file or any interface.
func TestUsageErrorsExit2(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--datapath", "dpdk", "--uplink", "eth0"}, "invalid --datapath"},
		{[]string{"--port-datapath", "auto", "--uplink", "eth0"}, "invalid --port-datapath"},
		{[]string{"--datapath", "", "--uplink", "eth0"}, "need a value"},
		{[]string{"--port-datapath", "", "--uplink", "eth0"}, "need a value"},
		{[]string{"--mode", "bridge", "--uplink", "eth0"}, "invalid --mode"},
		{[]string{"--mtu", "9", "--uplink", "eth0"}, "invalid --mtu"},
		{[]string{"--lldp-interval", "10ms", "--uplink", "eth0"}, "invalid --lldp-interval"},
		{[]string{"--lldp-interval", "soon", "--uplink", "eth0"}, "invalid value"},
		{[]string{"--cdcp", "yes", "--uplink", "eth0"}, "invalid --cdcp"},
		{[]string{"--cdcp", "on", "--lldp-interval", "0", "--uplink", "eth0"}, "--cdcp on needs LLDP"},
		{[]string{"--datapath-priority", "high", "--uplink", "eth0"}, "invalid --datapath-priority"},
		{[]string{"--preassociate-timeout", "10ms", "--uplink", "eth0"}, "invalid --preassociate-timeout"},
		{[]string{"--preassociate-timeout", "48h", "--uplink", "eth0"}, "invalid --preassociate-timeout"},
		{[]string{"--log-level", "loud", "--uplink", "eth0"}, "invalid --log-level"},
		{[]string{"--datapath", "afxdp"}, "--uplink IF is required"},
		{[]string{"--uplink", "eth0", "extra"}, "unexpected argument"},
		{[]string{"--no-such-flag"}, "flag provided but not defined"},
		{[]string{"--socket-group", "no-such-group-vsw", "--uplink", "eth0"}, "invalid --socket-group"},
		{[]string{"--socket-group", "-5", "--uplink", "eth0"}, "invalid --socket-group"},
		{[]string{"--libvirt", "libvirt-sock", "--uplink", "eth0"}, "invalid --libvirt"},
		{[]string{"--max-macs-per-port", "-1", "--uplink", "eth0"}, "invalid --max-macs-per-port -1: use 0-1048576"},
		{[]string{"--max-macs-per-port", "2000000", "--uplink", "eth0"}, "invalid --max-macs-per-port"},
		{[]string{"--max-macs-per-vlan", "0", "--uplink", "eth0"}, "invalid --max-macs-per-vlan 0: use 1-1048576"},
		{[]string{"--fdb-max", "0", "--uplink", "eth0"}, "invalid --fdb-max 0: use 1-1048576"},
		{[]string{"--fdb-max", "many", "--uplink", "eth0"}, "invalid value"},
	} {
		var stderr bytes.Buffer
		if code := run(tc.args, &stderr); code != 2 {
			t.Errorf("%v: exit %d, want 2 (stderr %q)", tc.args, code, stderr.String())
		}
		if !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: stderr %q does not say %q", tc.args, stderr.String(), tc.want)
		}
	}
}

// TestHelp documents every flag and exits 0.
func TestHelp(t *testing.T) {
	var stderr bytes.Buffer
	if code := run([]string{"-h"}, &stderr); code != 0 {
		t.Fatalf("-h: exit %d", code)
	}
	for _, f := range []string{"--uplink", "--datapath", "--port-datapath", "--mode", "--state", "--socket", "--metrics", "--mtu", "--datapath-priority", "--lldp-interval", "--log-level", "--socket-group", "--check", "--salvage", "--drop-port", "--max-macs-per-port", "--max-macs-per-vlan", "--fdb-max", "--libvirt", "--preassociate-timeout"} {
		if !strings.Contains(stderr.String(), strings.TrimPrefix(f, "-")) {
			t.Errorf("help does not mention %s:\n%s", f, stderr.String())
		}
	}
}

// TestLookupGroup resolves names from /etc/group and numbers as they are.
func TestLookupGroup(t *testing.T) {
	if gid, err := lookupGroup("root"); err != nil || gid != 0 {
		t.Errorf("root: %d, %v; want 0", gid, err)
	}
	if gid, err := lookupGroup("4242"); err != nil || gid != 4242 {
		t.Errorf("4242: %d, %v", gid, err)
	}
	if _, err := lookupGroup("no-such-group-vsw"); err == nil {
		t.Error("an unknown group resolved")
	}
}
