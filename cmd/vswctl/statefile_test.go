package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"github.com/vswitch/vswitch/pkg/api"
)

// A port whose state-file record the daemon cannot use is listed as down
// with its problem below the table, and status counts such ports and
// shows the state file's notes.
func TestUnusablePortsShown(t *testing.T) {
	var b bytes.Buffer
	ps := []api.Port{
		{Name: "vnet1", VLAN: 100, State: "up", Drops: map[string]uint64{}},
		{Name: "vnet2", State: "down", Problem: "port vnet2 has an invalid record (invalid VLAN 5000: must be 1-4094): ...", Drops: map[string]uint64{}},
	}
	if err := writePorts(&b, ps); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[2], "vnet2") || !strings.Contains(lines[2], "down") ||
		lines[3] != "vnet2: "+ps[1].Problem {
		t.Fatalf("list-ports:\n%s", b.String())
	}
	b.Reset()
	st := api.Status{Ports: 1, PortsUp: 1, PortsUnusable: 1, StatePath: "/x/state.db", StateNotes: []string{"the unusable meta page was rewritten"}}
	if err := writeStatus(&b, st); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1 (1 up), 1 unusable in the state file (see list-ports)", "state file note:", "the unusable meta page was rewritten"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, b.String())
		}
	}
}

// status shows the scheduling the datapath threads got, and why it is not
// the one asked for; a daemon that does not report it shows what it asked.
func TestStatusDatapathPriority(t *testing.T) {
	line := regexp.MustCompile(`(?m)^datapath threads:\s+(.*)$`)
	for _, tc := range []struct {
		st   api.Status
		want string
	}{
		{api.Status{DatapathPriority: "SCHED_RR 1", DatapathPriorityEffective: "normal", DatapathPriorityError: "set SCHED_RR 1: operation not permitted (needs CAP_SYS_NICE)"},
			"normal, not SCHED_RR 1 as configured: set SCHED_RR 1: operation not permitted (needs CAP_SYS_NICE)"},
		{api.Status{DatapathPriority: "SCHED_RR 1", DatapathPriorityEffective: "SCHED_RR 1"}, "SCHED_RR 1"},
		{api.Status{DatapathPriority: "nice -10"}, "nice -10"},
	} {
		var b bytes.Buffer
		if err := writeStatus(&b, tc.st); err != nil {
			t.Fatal(err)
		}
		if m := line.FindStringSubmatch(b.String()); m == nil || m[1] != tc.want {
			t.Errorf("datapath threads %q, want %q:\n%s", m, tc.want, b.String())
		}
	}
}
