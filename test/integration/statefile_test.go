package integration

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vswitch/vswitch/pkg/api"
)

// runVswitchd runs the vswitchd binary in h's namespace with args until it
// exits (20 s at most) and returns its output and exit code; a process
// ended by a signal (SIGBUS, SIGSEGV, a Go crash's SIGABRT) fails the test.
func (h *hv) runVswitchd(args ...string) (string, int) {
	t := h.lab.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := h.ns.Command(ctx, vswitchdBin, args...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			t.Fatalf("vswitchd %s was killed by %v:\n%s", strings.Join(args, " "), ws.Signal(), out)
		}
		return string(out), ee.ExitCode()
	default:
		t.Fatalf("run vswitchd %s: %v", strings.Join(args, " "), err)
		return "", 0
	}
}

// boltLayout reads a state file's page size, root page and high-water page
// from the meta page in use (bbolt's layout, little-endian: the page
// header is 16 bytes; the meta holds the page size at 8, the root at 16,
// the high-water mark at 40 and the txid at 48).
func boltLayout(t *testing.T, b []byte) (pageSize int, root, hw uint64) {
	t.Helper()
	le := binary.LittleEndian
	pageSize = int(le.Uint32(b[16+8:]))
	m := b[16:]
	if m1 := b[pageSize+16:]; le.Uint64(m1[48:]) > le.Uint64(m[48:]) {
		m = m1
	}
	root, hw = le.Uint64(m[16:]), le.Uint64(m[40:])
	if pageSize != 4096 || root < 2 || root >= hw || hw*uint64(pageSize) > uint64(len(b)) {
		t.Fatalf("state file layout: page size %d, root %d, %d pages, %d bytes", pageSize, root, hw, len(b))
	}
	return pageSize, root, hw
}

// daemonArgs are the flags of a daemon on h's uplink and state file, run
// by runVswitchd.
func (h *hv) daemonArgs() []string {
	return []string{"--uplink", "uplink", "--datapath", "afpacket", "--lldp-interval", "0", "--state", h.state, "--socket", h.sock}
}

// addPorts adds n access ports vnet100.. (no taps: they stay absent).
func (h *hv) addPorts(n int) {
	t := h.lab.t
	t.Helper()
	c := api.NewClient(h.sock)
	defer c.Close()
	for i := range n {
		vid := 100 + i
		if _, err := c.AddPort(context.Background(), api.PortSpec{Name: fmt.Sprintf("vnet%d", vid), VLAN: &vid}); err != nil {
			t.Fatal(err)
		}
	}
}

// The real daemon on damaged state files: the truncations that used to
// kill it with SIGBUS and random bytes in a page each end it with exit 1
// and one line that says what to do, never a signal or a panic; a file
// with an unusable record starts, and the offline commands repair it.
func TestStateFileDamageThroughTheDaemon(t *testing.T) {
	needBinaries(t)
	t.Parallel()
	_, hvs := newLab(t, "afpacket", 1)
	h := hvs[0]
	h.start("--lldp-interval", "0")
	h.addPorts(60)
	if err := h.d.kill(syscall.SIGTERM, 5*time.Second); err != nil {
		t.Fatalf("vswitchd on SIGTERM: %v", err)
	}
	good, err := os.ReadFile(h.state)
	if err != nil {
		t.Fatal(err)
	}
	ps, root, hw := boltLayout(t, good)
	r := rand.New(rand.NewPCG(9, 9))
	for _, c := range []struct {
		name   string
		damage func(b []byte) []byte
		want   string
	}{
		{"truncated to 8 KiB", func(b []byte) []byte { return b[:8<<10] }, "truncated"},
		{"truncated to 12 KiB", func(b []byte) []byte { return b[:12<<10] }, "truncated"},
		{"random bytes in the root page", func(b []byte) []byte {
			for i := range ps {
				b[int(root)*ps+i] = byte(r.Uint32())
			}
			return b
		}, fmt.Sprintf("page %d", root)},
		{"empty", func([]byte) []byte { return nil }, "is empty (0 bytes)"},
	} {
		if err := os.WriteFile(h.state, c.damage(append([]byte(nil), good...)), 0o600); err != nil {
			t.Fatal(err)
		}
		out, code := h.runVswitchd(h.daemonArgs()...)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		last := lines[len(lines)-1]
		if code != 1 || !strings.HasPrefix(last, "vswitchd: state file "+h.state) || !strings.Contains(last, c.want) ||
			strings.Contains(out, "panic") || strings.Contains(out, "goroutine") {
			t.Errorf("%s: exit %d, want 1 and one line saying %q:\n%s", c.name, code, c.want, out)
		}
		if c.name != "empty" && !strings.Contains(last, "--check --salvage NEWFILE") {
			t.Errorf("%s: the error does not say how to recover: %s", c.name, last)
		}
		// --check reads it and says the same (exit 1).
		if out, code := h.runVswitchd("--state", h.state, "--check"); code != 1 || !strings.Contains(out, c.want) {
			t.Errorf("%s: --check exit %d:\n%s", c.name, code, out)
		}
	}

	// Salvage the truncated-by-a-page file: the daemon starts with the copy
	// and has the ports that were readable, exactly as they were.
	if err := os.WriteFile(h.state, good[:(hw-1)*uint64(ps)], 0o600); err != nil {
		t.Fatal(err)
	}
	salvaged := filepath.Join(h.dir, "salvaged.db")
	out, code := h.runVswitchd("--state", h.state, "--check", "--salvage", salvaged)
	if code != 0 || !strings.Contains(out, "salvaged ") {
		t.Fatalf("--salvage: exit %d:\n%s", code, out)
	}
	if err := os.Rename(salvaged, h.state); err != nil {
		t.Fatal(err)
	}
	h.start("--lldp-interval", "0")
	salv := h.ports()
	for _, p := range salv {
		var vid int
		if _, err := fmt.Sscanf(p.Name, "vnet%d", &vid); err != nil || p.VLAN != vid || p.Problem != "" {
			t.Errorf("salvaged port %+v", p)
		}
	}
	if len(salv) == 0 || len(salv) > 60 {
		t.Errorf("salvaged %d ports of 60", len(salv))
	}
	t.Logf("a file cut by its last page: %d of 60 ports salvaged", len(salv))

	// An unusable record: the daemon starts and shows it as down with the
	// reason; the offline commands refuse the file while the daemon runs.
	if err := h.d.kill(syscall.SIGTERM, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.state, good, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(h.state, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("ports")).Put([]byte("vnet99"), []byte(`{"name":"vnet99","vlan":5000}`))
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	h.start("--lldp-interval", "0")
	out = h.mustCtl("list-ports")
	if !strings.Contains(out, "vnet99: port vnet99 has an invalid record (invalid VLAN 5000: must be 1-4094)") {
		t.Errorf("list-ports does not show the unusable record:\n%s", out)
	}
	var jps []api.Port
	if err := json.Unmarshal([]byte(h.mustCtl("-o", "json", "list-ports")), &jps); err != nil {
		t.Fatal(err)
	}
	if p := jps[len(jps)-1]; len(jps) != 61 || p.Name != "vnet99" || p.State != "down" || !strings.Contains(p.Problem, "invalid VLAN 5000") {
		t.Errorf("list-ports JSON: %d ports, last %+v", len(jps), jps[len(jps)-1])
	}
	if out := h.mustCtl("status"); !strings.Contains(out, "60 (0 up), 1 unusable in the state file") {
		t.Errorf("status:\n%s", out)
	}
	if out, code := h.runVswitchd("--state", h.state, "--drop-port", "vnet99"); code != 1 || !strings.Contains(out, "in use by a running vswitchd") {
		t.Errorf("--drop-port while the daemon runs: exit %d: %s", code, out)
	}
	if err := h.d.kill(syscall.SIGTERM, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if out, code := h.runVswitchd("--state", h.state, "--check"); code != 1 || !strings.Contains(out, "ports: 60 usable, 1 unusable") {
		t.Errorf("--check: exit %d:\n%s", code, out)
	}
	if out, code := h.runVswitchd("--state", h.state, "--drop-port", "vnet99"); code != 0 {
		t.Errorf("--drop-port: exit %d: %s", code, out)
	}
	if out, code := h.runVswitchd("--state", h.state, "--check"); code != 0 || !strings.Contains(out, "ports: 60 usable, 0 unusable") {
		t.Errorf("--check after --drop-port: exit %d:\n%s", code, out)
	}
}
