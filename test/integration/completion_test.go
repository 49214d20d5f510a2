package integration

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// Shell completion asks the running daemon for its ports: what a Tab
// after `vswctl del-port` offers is exactly the ports, whether the socket
// comes from --socket or from $VSWITCHD_SOCKET as in an operator's shell;
// capture offers the uplink too. A daemon that stopped gives nothing.
func TestCompletionFromDaemon(t *testing.T) {
	needBinaries(t)
	t.Parallel()
	_, hvs := newLab(t, datapaths(t)[0], 1)
	h := hvs[0]
	h.start()
	h.mustCtl("add-port", "vnet1", "--vlan", "100")
	h.mustCtl("add-port", "vnet2", "--trunk", "10,20")
	h.mustCtl("add-port", "tap7", "--vlan", "200")
	uplink := ""
	for _, l := range strings.Split(h.mustCtl("-o", "json", "status"), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), `"uplink": "`); ok {
			uplink = strings.TrimSuffix(v, `",`)
		}
	}
	if uplink == "" {
		t.Fatal("status names no uplink")
	}

	names := func(r ctlResult) string {
		t.Helper()
		// cobra notes the directive on stderr; anything else is a problem.
		if r.code != 0 || strings.Contains(strings.ToLower(r.stderr), "error") {
			t.Fatalf("__complete: exit %d, stderr %q", r.code, r.stderr)
		}
		lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
		if last := lines[len(lines)-1]; last != ":4" {
			t.Errorf("directive %q, want :4 (no file names)", last)
		}
		var ns []string
		for _, l := range lines[:len(lines)-1] {
			n, _, _ := strings.Cut(l, "\t")
			ns = append(ns, n)
		}
		return strings.Join(ns, " ")
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"__complete", "del-port", ""}, "tap7 vnet1 vnet2"},
		{[]string{"__complete", "set-port", "vn"}, "vnet1 vnet2"},
		{[]string{"__complete", "stats", "t"}, "tap7"},
		{[]string{"__complete", "capture", ""}, "tap7 vnet1 vnet2 " + uplink},
		{[]string{"__complete", "fdb", "--vlan", ""}, "100 200"},
	} {
		if got := names(h.ctl(c.args...)); got != c.want {
			t.Errorf("vswctl --socket S %s: %q, want %q", strings.Join(c.args, " "), got, c.want)
		}
	}
	if got := names(runCtlEnv(t, []string{"VSWITCHD_SOCKET=" + h.sock}, nil, "__complete", "del-port", "")); got != "tap7 vnet1 vnet2" {
		t.Errorf("VSWITCHD_SOCKET=S vswctl __complete del-port '': %q, want the three ports", got)
	}
	h.mustCtl("del-port", "tap7")
	if got := names(h.ctl("__complete", "del-port", "")); got != "vnet1 vnet2" {
		t.Errorf("after del-port tap7: %q, want vnet1 vnet2", got)
	}

	if err := h.d.kill(syscall.SIGTERM, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := names(h.ctl("__complete", "del-port", "")); got != "" {
		t.Errorf("daemon stopped: %q, want nothing", got)
	}
}
