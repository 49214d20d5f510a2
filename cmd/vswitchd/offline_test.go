package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/vswitch/vswitch/internal/store"
	"github.com/vswitch/vswitch/pkg/port"
)

// newState writes a state file with ports vnet1-vnet3 and an invalid
// record for vnet9, as a hand edit would leave it.
func newState(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetUplink("eth1", "vepa"); err != nil {
		t.Fatal(err)
	}
	for i, n := range []string{"vnet1", "vnet2", "vnet3"} {
		if err := s.PutPort(port.Config{Name: n, VLAN: uint16(100 + i)}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("ports")).Put([]byte("vnet9"), []byte(`{"name":"vnet9","vlan":9999}`))
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	return path
}

func runOffline(t *testing.T, path string, a offlineArgs) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := offline(path, a, &out, &errb)
	return code, out.String(), errb.String()
}

// The offline repair path: --check reports the bad record (exit 1),
// --drop-port removes it, --check then passes (exit 0).
func TestCheckAndDropPort(t *testing.T) {
	path := newState(t)
	code, out, _ := runOffline(t, path, offlineArgs{check: true})
	if code != 1 || !strings.Contains(out, "ports: 3 usable, 1 unusable") || !strings.Contains(out, "vnet9           UNUSABLE: port vnet9 has an invalid record (invalid VLAN 9999") {
		t.Fatalf("--check: exit %d\n%s", code, out)
	}
	if code, out, errs := runOffline(t, path, offlineArgs{dropPort: "vnet9"}); code != 0 || !strings.Contains(out, "dropped port vnet9") {
		t.Fatalf("--drop-port vnet9: exit %d %s %s", code, out, errs)
	}
	code, out, _ = runOffline(t, path, offlineArgs{check: true})
	if code != 0 || !strings.Contains(out, "ports: 3 usable, 0 unusable") || !strings.Contains(out, "verdict: vswitchd starts with this file\n") {
		t.Fatalf("--check after the drop: exit %d\n%s", code, out)
	}
	if code, _, errs := runOffline(t, path, offlineArgs{dropPort: "vnet9"}); code != 1 || !strings.Contains(errs, "has no port vnet9") || strings.Count(errs, "\n") != 1 {
		t.Errorf("--drop-port of a missing port: exit %d, %q", code, errs)
	}
	if code, _, errs := runOffline(t, filepath.Join(t.TempDir(), "none.db"), offlineArgs{check: true}); code != 1 || !strings.Contains(errs, "no such file") {
		t.Errorf("--check of a missing file: exit %d, %q", code, errs)
	}
}

// A truncated file: --check says what is wrong and how to recover (exit
// 1), --drop-port refuses it, --salvage copies what is readable into a new
// file the daemon starts with.
func TestSalvageTruncated(t *testing.T) {
	path := newState(t)
	if err := os.Truncate(path, 12<<10); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runOffline(t, path, offlineArgs{check: true})
	if code != 1 || !strings.Contains(out, "problem: truncated") || !strings.Contains(out, "--check --salvage NEWFILE") {
		t.Fatalf("--check of a truncated file: exit %d\n%s", code, out)
	}
	if code, _, errs := runOffline(t, path, offlineArgs{dropPort: "vnet1"}); code != 1 || !strings.Contains(errs, "is damaged") {
		t.Errorf("--drop-port on a truncated file: exit %d, %q", code, errs)
	}
	dst := filepath.Join(t.TempDir(), "new.db")
	code, out, errs := runOffline(t, path, offlineArgs{check: true, salvage: dst})
	if code != 0 || !strings.Contains(out, "salvaged ") || !strings.Contains(out, "into "+dst) {
		t.Fatalf("--salvage: exit %d\n%s%s", code, out, errs)
	}
	if code, out, _ := runOffline(t, dst, offlineArgs{check: true}); code != 0 {
		t.Errorf("--check of the salvaged file: exit %d\n%s", code, out)
	}
}

// A file a running daemon holds is refused, with a message that says so.
func TestOfflineRefusesRunningDaemonsFile(t *testing.T) {
	path := newState(t)
	s, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	code, _, errs := runOffline(t, path, offlineArgs{check: true})
	if code != 1 || !strings.Contains(errs, "is in use by a running vswitchd: stop it first") || strings.Count(errs, "\n") != 1 {
		t.Errorf("--check of a held file: exit %d, %q", code, errs)
	}
}

func TestOfflineUsage(t *testing.T) {
	var stderr bytes.Buffer
	if code := run([]string{"--config=", "--check", "--drop-port", "vnet1"}, io.Discard, &stderr); code != 2 || !strings.Contains(stderr.String(), "--drop-port does not combine") {
		t.Errorf("--check --drop-port: exit %d, %q", code, stderr.String())
	}
}
