package integration

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A second vswitchd on an uplink already served (its own state file and
// socket) is refused before it touches the uplink: it exits 1 saying who
// serves it, and the first one keeps working.
func TestSecondDaemonOnUplinkRefused(t *testing.T) {
	_, hvs := newLab(t, "afpacket", 1)
	h := hvs[0]
	vm1, vm2 := h.pairOnVLAN100()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := h.ns.Run(ctx, vswitchdBin, "--uplink", "uplink", "--datapath", "afpacket",
		"--state", filepath.Join(dir, "state.db"), "--socket", filepath.Join(dir, "sock"))
	if err == nil {
		t.Fatalf("second vswitchd on the same uplink ran and exited 0:\n%s", out)
	}
	if !strings.Contains(string(out), "already served by vswitchd pid") {
		t.Fatalf("second vswitchd failed, but not because the uplink is served: %v\n%s", err, out)
	}
	h.alive()
	vm1.mustPing(vm2)
}
