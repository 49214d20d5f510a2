package store

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vswitch/vswitch/pkg/port"
)

// basePorts is how many ports buildState writes: enough for several leaf
// pages under a branch page.
const basePorts = 80

// buildState writes a state file the way the daemon does (an uplink, ports
// with registered MACs, a saved FDB) and returns its path, its layout and
// its ports by name.
func buildState(t *testing.T) (string, *boltScan, map[string]port.Config) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "base.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetUplink("eth1", "vepa"); err != nil {
		t.Fatal(err)
	}
	want := map[string]port.Config{}
	for i := range basePorts {
		c := port.Config{Name: fmt.Sprintf("vnet%d", i), VLAN: uint16(i + 1), PCP: uint8(i % 8)}
		for j := range 3 {
			c.MACs = append(c.MACs, net.HardwareAddr{0x52, 0x54, 0, byte(i), byte(j), 1})
		}
		if err := s.PutPort(c); err != nil {
			t.Fatal(err)
		}
		want[c.Name] = c
	}
	var fdb []FDBRecord
	for i := range 100 {
		fdb = append(fdb, FDBRecord{VLAN: 1 + i%10, MAC: fmt.Sprintf("52:54:00:aa:00:%02x", i), Port: "vnet1"})
	}
	if err := s.SaveFDB(fdb); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	sc := scanFile(t, path)
	if sc.damaged() || sc.meta.hw < 8 {
		t.Fatalf("base file: problems %v, %d pages; want a sound file of at least 8 pages", sc.problems, sc.meta.hw)
	}
	return path, sc, want
}

func scanFile(t *testing.T, path string) *boltScan {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return scanBolt(f, fi.Size(), true)
}

// dup copies the file at path to a new name in its directory.
func dup(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "state.db")
	if err := os.WriteFile(out, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

// overwrite writes b at offset off of the file at path.
func overwrite(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// pagesOfType lists the pages in use of a type (flagLeaf, flagBranch,
// flagFreelist).
func pagesOfType(t *testing.T, path string, sc *boltScan, flags uint16) []uint64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for id := uint64(2); id < uint64(len(sc.state)); id++ {
		off := int(id) * sc.pageSize
		if sc.state[id] == pageUsed && ne.Uint64(b[off:]) == id && ne.Uint16(b[off+8:]) == flags {
			out = append(out, id)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no page of type %#x in use", flags)
	}
	return out
}

// outcome is what opening a damaged file gives, as the README documents.
type outcome int

const (
	refused     outcome = iota + 1 // *DamageError: one line, file untouched
	refusedNew                     // ErrNewerSchema
	startsNoted                    // opens; Notes say what it coped with
	startsBad                      // opens; Records report unusable ports
)

// TestDamagedFiles is the table of damaged state files: each gives its
// documented outcome in-process (Open as the daemon runs it, and Check as
// --check runs it), none panics, and none needs the fault guard: the scan
// finds the damage before bbolt touches it.
func TestDamagedFiles(t *testing.T) {
	base, sc, _ := buildState(t)
	ps := int64(sc.pageSize)
	hw := int64(sc.meta.hw)

	truncate := func(n int64) func(t *testing.T, path string) {
		return func(t *testing.T, path string) {
			if err := os.Truncate(path, n); err != nil {
				t.Fatal(err)
			}
		}
	}
	zero := func(page int64) func(t *testing.T, path string) {
		return func(t *testing.T, path string) { overwrite(t, path, page*ps, make([]byte, ps)) }
	}
	random := func(flags uint16, seed uint64) func(t *testing.T, path string) {
		return func(t *testing.T, path string) {
			ids := pagesOfType(t, path, sc, flags)
			r := rand.New(rand.NewPCG(seed, 1))
			b := make([]byte, ps)
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			overwrite(t, path, int64(ids[r.IntN(len(ids))])*ps, b)
		}
	}
	raw := func(fn func(tx *bolt.Tx) error) func(t *testing.T, path string) {
		return func(t *testing.T, path string) { rawDB(t, path, fn) }
	}
	for _, c := range []struct {
		name   string
		damage func(t *testing.T, path string)
		want   outcome
		msg    string // in the error, the notes or the unusable record
	}{
		{"empty", truncate(0), refused, "is empty (0 bytes)"},
		{"truncated to 100 bytes", truncate(100), refused, "truncated"},
		{"truncated to 4 KiB", truncate(4 << 10), refused, "truncated"},
		{"truncated to 8 KiB", truncate(8 << 10), refused, "truncated"},
		{"truncated to 12 KiB", truncate(12 << 10), refused, "truncated"},
		{"truncated to 16 KiB", truncate(16 << 10), refused, "truncated"},
		{"truncated mid-page", truncate(5*ps + ps/2), refused, "truncated"},
		{"truncated by one page", truncate((hw - 1) * ps), refused, "truncated"},
		{"cut after its pages", truncate(hw * ps), startsBad, ""}, // bbolt's spare space only
		{"meta page 0 zeroed", zero(0), startsNoted, "meta page 0 is unusable"},
		{"meta page 1 zeroed", zero(1), startsNoted, "meta page 1 is unusable"},
		{"both meta pages zeroed", func(t *testing.T, path string) { zero(0)(t, path); zero(1)(t, path) }, refused, "both its meta pages"},
		{"random bytes in a leaf page", random(flagLeaf, 1), refused, "page"},
		{"random bytes in another leaf page", random(flagLeaf, 2), refused, "page"},
		{"random bytes in the branch page", random(flagBranch, 3), refused, "page"},
		{"random bytes in the freelist page", random(flagFreelist, 4), refused, "freelist page"},
		{"not a state file", func(t *testing.T, path string) {
			if err := os.WriteFile(path, bytes.Repeat([]byte("garbage!"), 2048), 0o600); err != nil {
				t.Fatal(err)
			}
		}, refused, "not a state file"},
		{"an invalid record", raw(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketPorts).Put([]byte("vnet3"), []byte(`{"name":"vnet3","vlan":5000}`))
		}), startsBad, "invalid VLAN 5000"},
		{"a corrupt record", raw(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketPorts).Put([]byte("vnet3"), []byte(`{"name":"vnet3","vl`))
		}), startsBad, "port vnet3 has a corrupt record"},
		{"a record over the bounds", raw(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketPorts).Put([]byte("vnet3"), []byte(`{"name":"vnet3","vlan":3,"macs":[`+
				strings.Repeat(`"52:54:00:00:00:01",`, 60000)+`"52:54:00:00:00:02"]}`))
		}), startsBad, "more than the 1048576 a port record can be"},
		{"a newer schema", raw(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(keySchema, []byte("3"))
		}), refusedNew, "has schema v3, this vswitchd understands up to v2"},
		{"an unreadable schema", raw(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(keySchema, []byte("\xff"))
		}), refused, "unreadable schema version"},
		{"no buckets", raw(func(tx *bolt.Tx) error {
			if err := tx.DeleteBucket(bucketPorts); err != nil {
				return err
			}
			return tx.DeleteBucket(bucketMeta)
		}), startsNoted, "holds no vswitchd data"},
		{"no ports bucket", raw(func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketPorts) }), startsNoted, "no ports bucket"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := dup(t, base)
			c.damage(t, path)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			s, err := Open(path)
			if err != nil && strings.Contains(err.Error(), "reading it failed") {
				t.Errorf("the fault guard, not the scan, caught it: %v", err)
			}
			var de *DamageError
			switch c.want {
			case refused, refusedNew:
				if err == nil {
					s.Close()
					t.Fatalf("Open succeeded")
				}
				if c.want == refused && !errors.As(err, &de) || c.want == refusedNew && !errors.Is(err, ErrNewerSchema) {
					t.Fatalf("Open: %v (%T), want outcome %d", err, err, c.want)
				}
				if msg := err.Error(); !strings.Contains(msg, c.msg) || strings.Contains(msg, "\n") || !strings.Contains(msg, path) {
					t.Errorf("error %q: want one line naming the file and containing %q", msg, c.msg)
				}
				if c.want == refused && c.name != "empty" && !strings.Contains(err.Error(), "--check --salvage NEWFILE") {
					t.Errorf("error %q does not say how to recover", err)
				}
				after, _ := os.ReadFile(path)
				if !bytes.Equal(before, after) {
					t.Errorf("the refused file was changed")
				}
			case startsNoted, startsBad:
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				good, bad, err := s.Records()
				if err != nil {
					t.Fatalf("Records: %v", err)
				}
				if _, err := s.FDB(); err != nil && c.want == startsBad {
					t.Errorf("FDB: %v", err)
				}
				s.Close()
				switch {
				case c.want == startsNoted && !strings.Contains(strings.Join(s.Notes(), "\n"), c.msg):
					t.Errorf("notes %q lack %q", s.Notes(), c.msg)
				case c.want == startsBad && c.msg == "":
					if len(bad) != 0 || len(good) != basePorts {
						t.Errorf("%d usable ports, unusable %v; want %d and none", len(good), bad, basePorts)
					}
				case c.want == startsBad:
					if len(bad) != 1 || !strings.Contains(bad[0].Error(), c.msg) || len(good) != basePorts-1 {
						t.Errorf("%d usable ports, unusable %v; want %d and vnet3 for %q", len(good), bad, basePorts-1, c.msg)
					}
				}
			}
			// --check agrees: problems exactly when the daemon refuses.
			if c.want == refused && c.name == "empty" {
				return
			}
			r, err := Check(path)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if (len(r.Problems) > 0) != (c.want == refused || c.want == refusedNew) {
				t.Errorf("Check problems %q, but Open's outcome is %d", r.Problems, c.want)
			}
			if (len(r.Bad) > 0) != (c.want == startsBad && c.msg != "") {
				t.Errorf("Check unusable records %v", r.Bad)
			}
		})
	}

}

// Random damage anywhere in the file, 400 times: Open and the reads the
// daemon makes give an error or data, never a panic, and the scan (not
// the fault guard) catches what would fault.
func TestRandomDamageNeverPanics(t *testing.T) {
	base, sc, want := buildState(t)
	orig, err := os.ReadFile(base)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(42, 42))
	path := filepath.Join(t.TempDir(), "state.db")
	counts := map[string]int{}
	for i := range 400 {
		b := append([]byte(nil), orig...)
		switch i % 4 {
		case 0: // a few random bytes
			off := r.IntN(int(sc.meta.hw) * sc.pageSize)
			for j := range 1 + r.IntN(16) {
				if off+j < len(b) {
					b[off+j] = byte(r.Uint32())
				}
			}
		case 1: // one bit
			off := r.IntN(int(sc.meta.hw) * sc.pageSize)
			b[off] ^= 1 << r.IntN(8)
		case 2: // truncation
			b = b[:r.IntN(len(b))]
		case 3: // a page header
			id := 2 + r.IntN(int(sc.meta.hw)-2)
			for j := range pageHeaderSize {
				b[id*sc.pageSize+j] = byte(r.Uint32())
			}
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(path)
		if err != nil {
			if strings.Contains(err.Error(), "reading it failed") {
				t.Errorf("round %d: the fault guard caught it: %v", i, err)
			}
			counts["refused"]++
			continue
		}
		good, bad, err := s.Records()
		if err != nil {
			t.Errorf("round %d: Records: %v", i, err)
		}
		for _, c := range good {
			if w, ok := want[c.Name]; ok && !reflect.DeepEqual(c, w) {
				counts["changed"]++ // a flipped byte inside a record that still validates
			}
		}
		s.FDB()
		s.Close()
		if len(bad) > 0 {
			counts["unusable records"]++
		} else {
			counts["opened"]++
		}
	}
	t.Logf("400 damaged files: %v", counts)
	if counts["refused"] == 0 || counts["opened"] == 0 {
		t.Errorf("outcomes %v: want some files refused and some opened", counts)
	}
}

// Check reports a sound file's contents and says the daemon starts with it.
func TestCheckReport(t *testing.T) {
	base, _, want := buildState(t)
	r, err := Check(base)
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() || len(r.Ports) != basePorts || r.Schema != currentSchema || r.Uplink != "eth1" || r.Mode != "vepa" || r.FDB != 100 {
		t.Fatalf("report %+v", r)
	}
	for _, c := range r.Ports {
		if !reflect.DeepEqual(c, want[c.Name]) {
			t.Errorf("port %s = %+v, want %+v", c.Name, c, want[c.Name])
		}
	}
	var b bytes.Buffer
	if _, err := r.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"ports: 80 usable, 0 unusable", `vnet7           {"name":"vnet7","vlan":8,"pcp":7`, "saved learned MACs: 100",
		"verdict: vswitchd starts with this file\n"} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("report lacks %q:\n%s", w, b.String())
		}
	}
	// A bad record: reported with its repair; the daemon starts.
	rawDB(t, base, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPorts).Put([]byte("vnet5"), []byte(`{"vlan":0}`))
	})
	if r, err = Check(base); err != nil {
		t.Fatal(err)
	}
	b.Reset()
	r.WriteTo(&b)
	if r.OK() || len(r.Bad) != 1 || r.Bad[0].Port != "vnet5" || !strings.Contains(b.String(), "vnet5           UNUSABLE: port vnet5 has an invalid record") ||
		!strings.Contains(b.String(), "verdict: vswitchd starts with this file; the unusable ports stay down") {
		t.Errorf("report with a bad record: %+v\n%s", r, b.String())
	}
	if _, err := Check(filepath.Join(t.TempDir(), "none.db")); err == nil {
		t.Error("Check of a missing file succeeded")
	}
}

// The offline commands refuse a file a running daemon holds.
func TestOfflineRefusesHeldFile(t *testing.T) {
	s, path := openTemp(t)
	if err := s.PutPort(port.Config{Name: "vnet1", VLAN: 1}); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "new.db")
	for name, fn := range map[string]func() error{
		"Check":    func() error { _, err := Check(path); return err },
		"DropPort": func() error { return DropPort(path, "vnet1") },
		"Salvage":  func() error { _, err := Salvage(path, dst); return err },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel() // each waits for the lock
			if err := fn(); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "locked by another vswitchd") {
				t.Errorf("%s of a held file: %v, want ErrLocked", name, err)
			}
		})
	}
}

// DropPort removes one record, usable or not, and nothing else.
func TestDropPort(t *testing.T) {
	base, _, _ := buildState(t)
	rawDB(t, base, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPorts).Put([]byte("vnet5"), []byte(`{"vlan":5000}`))
	})
	if err := DropPort(base, "vnet5"); err != nil {
		t.Fatal(err)
	}
	if err := DropPort(base, "vnet6"); err != nil {
		t.Fatal(err)
	}
	r, err := Check(base)
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() || len(r.Ports) != basePorts-2 {
		t.Fatalf("after dropping 2 ports: %d ports, %v", len(r.Ports), r.Bad)
	}
	for _, c := range r.Ports {
		if c.Name == "vnet5" || c.Name == "vnet6" {
			t.Errorf("%s still there", c.Name)
		}
	}
	if err := DropPort(base, "vnet5"); !errors.Is(err, port.ErrNotFound) {
		t.Errorf("dropping it again: %v, want ErrNotFound", err)
	}
	if err := DropPort(filepath.Join(t.TempDir(), "none.db"), "vnet1"); err == nil {
		t.Error("DropPort on a missing file succeeded")
	}
	if err := os.Truncate(base, 12<<10); err != nil {
		t.Fatal(err)
	}
	if err := DropPort(base, "vnet1"); !errors.Is(err, ErrDamaged) {
		t.Errorf("DropPort on a truncated file: %v, want ErrDamaged", err)
	}
}

// Salvage copies every readable valid record of a damaged file, exactly
// as it was, into a new file the daemon starts with.
func TestSalvage(t *testing.T) {
	base, sc, want := buildState(t)
	leaves := pagesOfType(t, base, sc, flagLeaf)
	for _, c := range []struct {
		name   string
		damage func(path string)
		min    int // ports salvaged at least
	}{
		{"sound", func(string) {}, basePorts},
		{"truncated by one page", func(p string) { os.Truncate(p, int64(sc.meta.hw-1)*int64(sc.pageSize)) }, 1},
		{"a leaf page destroyed", func(p string) {
			overwrite(t, p, int64(leaves[0])*int64(sc.pageSize), bytes.Repeat([]byte{0xa5}, sc.pageSize))
		}, 1},
		{"a bad record", func(p string) {
			rawDB(t, p, func(tx *bolt.Tx) error { return tx.Bucket(bucketPorts).Put([]byte("vnet9"), []byte(`{"vlan":9999}`)) })
		}, basePorts - 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := dup(t, base)
			c.damage(path)
			dst := filepath.Join(t.TempDir(), "salvaged.db")
			r, err := Salvage(path, dst)
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Ports) < c.min || len(r.Ports) > basePorts {
				t.Fatalf("salvaged %d ports, want %d-%d (problems %q)", len(r.Ports), c.min, basePorts, r.Problems)
			}
			if c.name != "sound" && r.OK() {
				t.Errorf("the report of a damaged file says OK")
			}
			s, err := Open(dst)
			if err != nil {
				t.Fatalf("Open salvaged file: %v", err)
			}
			defer s.Close()
			got, bad, err := s.Records()
			if err != nil || len(bad) != 0 || len(got) != len(r.Ports) {
				t.Fatalf("salvaged file: %d ports, unusable %v, %v; the report listed %d", len(got), bad, err, len(r.Ports))
			}
			for _, g := range got {
				if !reflect.DeepEqual(g, want[g.Name]) {
					t.Errorf("salvaged %+v, was %+v", g, want[g.Name])
				}
			}
			if up, mode, _ := s.Uplink(); up != "eth1" || mode != "vepa" {
				t.Errorf("salvaged uplink %q %q", up, mode)
			}
			if _, err := Salvage(path, dst); err == nil || !strings.Contains(err.Error(), "exists already") {
				t.Errorf("salvage over an existing file: %v", err)
			}
		})
	}
	// A file of a newer schema is not salvaged by an older vswitchd.
	path := dup(t, base)
	rawDB(t, path, func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keySchema, []byte("3")) })
	if _, err := Salvage(path, filepath.Join(t.TempDir(), "x.db")); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("salvage of a v3 file: %v", err)
	}
}

// An FDB snapshot over its bounds is refused unread; SaveFDB never writes
// one.
func TestFDBBounds(t *testing.T) {
	s, _ := openTemp(t)
	recs := make([]FDBRecord, MaxFDBRecords+10)
	for i := range recs {
		recs[i] = FDBRecord{VLAN: 1, MAC: "52:54:00:00:00:01", Port: "vnet1"}
	}
	if err := s.SaveFDB(recs); err != nil {
		t.Fatal(err)
	}
	got, err := s.FDB()
	if err != nil || len(got) != MaxFDBRecords {
		t.Fatalf("FDB after saving %d entries: %d, %v; want %d", len(recs), len(got), err, MaxFDBRecords)
	}
	big, err := encodeFDB(recs[:MaxFDBRecords])
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		v    []byte
		want string
	}{
		{append(big[:len(big)-1:len(big)-1], []byte(`,{"vlan":1}]`)...), "more than 65536 entries"},
		{bytes.Repeat([]byte(" "), maxFDBBytes+1), "more than the 8388608"},
		{[]byte(`{"vlan":1}`), "not a list"},
		{[]byte(`[{"vlan":1}] x`), "data after its end"},
		{[]byte(`[{"vlan":"x"}]`), "decode FDB entry 0"},
	} {
		if _, err := decodeFDB(c.v); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("decodeFDB(%.40q...): %v, want %q", c.v, err, c.want)
		}
	}
	if recs, err := decodeFDB([]byte("null")); err != nil || recs != nil {
		t.Errorf("decodeFDB(null) = %v, %v", recs, err)
	}
}

// An inline bucket whose entries are buckets sharing one nested inline
// page, 24 levels deep, would cost 2^24 walks (inline pages have no
// number to mark as seen): bbolt never writes one, and the scan refuses it
// at the first level.
func TestNestedInlineBucketsRefusedAtOnce(t *testing.T) {
	page := make([]byte, pageHeaderSize) // the innermost: an empty leaf
	ne.PutUint16(page[8:], flagLeaf)
	for range 24 {
		value := append(make([]byte, bucketHeaderSize), page...) // root 0: inline
		p := make([]byte, pageHeaderSize+2*elemSize)
		ne.PutUint16(p[8:], flagLeaf)
		ne.PutUint16(p[10:], 2)
		for i := range 2 {
			e := p[pageHeaderSize+i*elemSize:]
			ne.PutUint32(e[0:], leafIsBucket)
			ne.PutUint32(e[4:], uint32(len(p)-pageHeaderSize-i*elemSize)) // both at the same key and value
			ne.PutUint32(e[8:], 1)
			ne.PutUint32(e[12:], uint32(len(value)))
		}
		page = append(append(p, 'b'), value...)
	}
	s := &boltScan{buckets: map[string][]kv{}}
	start := time.Now()
	s.walkPage(page, 0, 1, "ports", false)
	if d := time.Since(start); d > time.Second || !s.damaged() || !strings.Contains(s.problems[0], "which bbolt never writes") {
		t.Fatalf("scan took %v, problems %q", d, s.problems)
	}
}

// A new state file appears complete (bbolt initialised it under a
// temporary name), and nothing else in its directory is touched or left.
func TestFreshFileCreatedComplete(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	other := path + ".new" // e.g. an operator's salvaged copy
	if err := os.WriteFile(other, []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if len(s.Notes()) != 0 {
		t.Errorf("a new file has notes %q", s.Notes())
	}
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[0].Name() != "state.db" || es[1].Name() != "state.db.new" {
		t.Errorf("directory holds %v, want state.db and state.db.new", es)
	}
	if b, _ := os.ReadFile(other); string(b) != "mine" {
		t.Errorf("%s was changed: %q", other, b)
	}
	if sc := scanFile(t, path); sc.damaged() || sc.size < 4*int64(sc.pageSize) {
		t.Errorf("new file: %d bytes, problems %q", sc.size, sc.problems)
	}
}
