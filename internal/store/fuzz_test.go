package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The state file is outside data: these fuzz targets feed its decoders
// arbitrary bytes. Seed corpora are in testdata/fuzz (go test replays
// them); run one with
//
//	TMPDIR=/dev/shm go test -fuzz FuzzScanBolt -fuzzminimizetime 1s ./internal/store
//
// (FuzzScanBolt writes each file it passes and opens it; with the default
// minimize time the fuzzer spends its minutes minimizing kilobyte inputs.)

// FuzzDecodeRecord: a port record decodes to a valid port or to an error,
// never a panic, and a decoded port writes back to a record that decodes
// to the same port.
func FuzzDecodeRecord(f *testing.F) {
	for _, s := range []struct{ name, rec string }{
		{"vnet1", `{"name":"vnet1","vlan":100}`},
		{"vnet2", `{"name":"vnet2","trunk":"10,20-30","native_vlan":10,"macs":["52:54:00:12:34:56"],"pcp":3,"svid":7,"flood_unknown":true}`},
		{"vnet3", `{"vlan":7}`}, {"vnet4", `null`}, {"vnet5", `{"vlan":5000}`}, {"a:b", `{"vlan":1}`},
		{"vnet6", `{"name":"x","vlan":1,"macs":["01:00:5e:00:00:01"]}`}, {"vnet7", `[`}, {"", `{}`},
	} {
		f.Add(s.name, []byte(s.rec))
	}
	f.Fuzz(func(t *testing.T, name string, rec []byte) {
		c, err := decodeRecord(name, rec)
		if err != nil {
			if c.Name != "" {
				t.Fatalf("error %v with a port %+v", err, c)
			}
			return
		}
		if err := c.Validate(); err != nil || c.Name != name {
			t.Fatalf("decoded %+v (name %q) does not validate: %v", c, name, err)
		}
		b, err := encodePort(c)
		if err != nil {
			t.Fatalf("encode %+v: %v", c, err)
		}
		c2, err := decodeRecord(name, b)
		if err != nil || !reflect.DeepEqual(c, c2) {
			t.Fatalf("round trip %s: %+v, %v; want %+v", b, c2, err, c)
		}
	})
}

// FuzzDecodeFDB: an FDB snapshot decodes within its bounds or is refused,
// never a panic, and what decodes writes back the same.
func FuzzDecodeFDB(f *testing.F) {
	for _, s := range []string{
		`[{"vlan":100,"mac":"52:54:00:12:34:56","port":"vnet1"}]`, `null`, `[]`, `[{"vlan":"x"}]`, `{"vlan":1}`,
		`[{"vlan":1,"mac":"zz","port":""},{"vlan":4094,"mac":"52:54:00:12:34:57","port":"vnet2","x":1}]`, `[1]`, `[{}] []`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		recs, err := decodeFDB(v)
		if err != nil {
			return
		}
		if len(recs) > MaxFDBRecords {
			t.Fatalf("%d entries, more than %d", len(recs), MaxFDBRecords)
		}
		b, err := encodeFDB(recs)
		if err != nil {
			t.Fatal(err)
		}
		again, err := decodeFDB(b)
		if err != nil || len(again) != len(recs) || len(recs) > 0 && !reflect.DeepEqual(again, recs) {
			t.Fatalf("round trip of %q: %v, %v", v, again, err)
		}
	})
}

// FuzzScanBolt: the scan of any bytes gives problems or a layout, never a
// panic; and a file it finds sound is safe for bbolt: opening it as the
// daemon does, and the reads the daemon makes at start, never need the
// fault guard (a fault or a bbolt panic would be "reading it failed").
func FuzzScanBolt(f *testing.F) {
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte("garbage!"), 512))
	dir := f.TempDir()
	path := filepath.Join(dir, "state.db")
	f.Fuzz(func(t *testing.T, b []byte) {
		sc := scanBolt(bytes.NewReader(b), int64(len(b)), true)
		if sc.damaged() {
			return
		}
		if sc.meta == nil || sc.pageSize == 0 {
			t.Fatalf("a sound scan without a layout: %+v", sc)
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(path)
		if err != nil {
			if strings.Contains(err.Error(), "reading it failed") {
				t.Fatalf("the scan passed a file bbolt cannot read: %v", err)
			}
			var de *DamageError
			if !errors.As(err, &de) && !errors.Is(err, ErrNewerSchema) {
				t.Fatalf("Open: %v (%T), want damage or a newer schema", err, err)
			}
			return
		}
		defer s.Close()
		for _, read := range []func() error{
			func() error { _, _, err := s.Records(); return err },
			func() error { _, err := s.FDB(); return err },
			func() error { _, _, err := s.Uplink(); return err },
		} {
			if err := read(); err != nil && strings.Contains(err.Error(), "reading it failed") {
				t.Fatalf("a read of a file the scan passed needed the guard: %v", err)
			}
		}
	})
}
