package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vswitch/vswitch/pkg/port"
	"github.com/vswitch/vswitch/pkg/vlan"
)

func mac(t *testing.T, s string) net.HardwareAddr {
	t.Helper()
	m, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func trunk(t *testing.T, s string) vlan.VIDSet {
	t.Helper()
	set, err := vlan.ParseVIDSet(s)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func openTemp(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sub", "dir", "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func TestOpenCreatesDirAndFileModes(t *testing.T) {
	_, path := openTemp(t)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("state file mode %o, want 600", got)
	}
	di, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if !di.IsDir() {
		t.Fatalf("%s is not a directory", filepath.Dir(path))
	}
}

func TestRoundTrip(t *testing.T) {
	s, _ := openTemp(t)
	name, mode, err := s.Uplink()
	if err != nil || name != "" || mode != "" {
		t.Fatalf("fresh Uplink = %q %q %v, want empty", name, mode, err)
	}
	if err := s.SetUplink("eth0", "veb"); err != nil {
		t.Fatal(err)
	}
	if name, mode, _ = s.Uplink(); name != "eth0" || mode != "veb" {
		t.Fatalf("Uplink = %q %q, want eth0 veb", name, mode)
	}
	want := []port.Config{
		{Name: "vnet1", VLAN: 100, PCP: 3, SVID: 7, MACs: []net.HardwareAddr{mac(t, "52:54:00:12:34:56")}},
		{Name: "vnet0", Trunk: trunk(t, "10,20-30"), NativeVLAN: 10, Flood: true},
	}
	for _, p := range want {
		if err := s.PutPort(p); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Ports()
	if err != nil {
		t.Fatal(err)
	}
	// Sorted by name.
	if !reflect.DeepEqual(got, []port.Config{want[1], want[0]}) {
		t.Fatalf("Ports = %+v", got)
	}
	p, err := s.Port("vnet1")
	if err != nil || !reflect.DeepEqual(p, want[0]) {
		t.Fatalf("Port(vnet1) = %+v, %v", p, err)
	}
	// Replace.
	want[0].VLAN = 200
	if err := s.PutPort(want[0]); err != nil {
		t.Fatal(err)
	}
	if p, _ = s.Port("vnet1"); p.VLAN != 200 {
		t.Fatalf("after replace VLAN = %d", p.VLAN)
	}
	if err := s.DeletePort("vnet1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeletePort("vnet1"); !errors.Is(err, port.ErrNotFound) {
		t.Fatalf("second delete: %v, want port.ErrNotFound", err)
	}
	if _, err := s.Port("vnet1"); !errors.Is(err, port.ErrNotFound) {
		t.Fatalf("Port after delete: %v, want port.ErrNotFound", err)
	}
	if err := s.PutPort(port.Config{}); err == nil {
		t.Fatal("PutPort with empty name succeeded")
	}
	// Nothing invalid is written.
	if err := s.PutPort(port.Config{Name: "vnet9", VLAN: 10, NativeVLAN: 20}); err == nil {
		t.Fatal("PutPort of an invalid port succeeded")
	}
	if _, err := s.Port("vnet9"); !errors.Is(err, port.ErrNotFound) {
		t.Fatalf("invalid port was written: %v", err)
	}
}

func TestReopenPersists(t *testing.T) {
	s, path := openTemp(t)
	if err := s.SetUplink("ens1", "vepa"); err != nil {
		t.Fatal(err)
	}
	if err := s.PutPort(port.Config{Name: "vnet3", VLAN: 42, MACs: []net.HardwareAddr{mac(t, "52:54:00:00:00:01")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	name, mode, _ := s2.Uplink()
	if name != "ens1" || mode != "vepa" {
		t.Fatalf("Uplink after reopen = %q %q", name, mode)
	}
	ports, err := s2.Ports()
	if err != nil {
		t.Fatal(err)
	}
	if len(ports) != 1 || ports[0].Name != "vnet3" || ports[0].VLAN != 42 || ports[0].MACs[0].String() != "52:54:00:00:00:01" {
		t.Fatalf("Ports after reopen = %+v", ports)
	}
}

// rawDB writes a bbolt file by hand, the way another version would have.
func rawDB(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	rawDB(t, path, func(tx *bolt.Tx) error {
		m, _ := tx.CreateBucket(bucketMeta)
		tx.CreateBucket(bucketPorts)
		return m.Put(keySchema, []byte("9"))
	})
	s, err := Open(path)
	if err == nil {
		s.Close()
		t.Fatal("Open of a v9 store succeeded")
	}
	if !errors.Is(err, ErrNewerSchema) {
		t.Errorf("error %v is not ErrNewerSchema", err)
	}
	want := "state file " + path + " has schema v9, this vswitchd understands up to v2: upgrade vswitchd"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}
	// The file must not have been touched.
	rawDB(t, path, func(tx *bolt.Tx) error {
		if v := string(tx.Bucket(bucketMeta).Get(keySchema)); v != "9" {
			t.Errorf("schema rewritten to %q", v)
		}
		return nil
	})
}

func TestMigrateV1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	// A v1 file: meta has the uplink but no mode and no schema key; ports
	// hold {"vlan":N} only.
	rawDB(t, path, func(tx *bolt.Tx) error {
		m, _ := tx.CreateBucket(bucketMeta)
		if err := m.Put(keyUplink, []byte("eth1")); err != nil {
			return err
		}
		p, _ := tx.CreateBucket(bucketPorts)
		if err := p.Put([]byte("vnet2"), []byte(`{"vlan":20}`)); err != nil {
			return err
		}
		return p.Put([]byte("vnet1"), []byte(`{"vlan":10}`))
	})
	s, err := Open(path)
	if err != nil {
		t.Fatalf("Open v1: %v", err)
	}
	ports, err := s.Ports()
	if err != nil {
		t.Fatal(err)
	}
	want := []port.Config{{Name: "vnet1", VLAN: 10}, {Name: "vnet2", VLAN: 20}}
	if !reflect.DeepEqual(ports, want) {
		t.Fatalf("migrated ports = %+v, want %+v", ports, want)
	}
	name, mode, _ := s.Uplink()
	if name != "eth1" || mode != "vepa" {
		t.Fatalf("migrated uplink = %q %q, want eth1 vepa", name, mode)
	}
	s.Close()
	// The migration was written: the file now says v2 and records names.
	rawDB(t, path, func(tx *bolt.Tx) error {
		if v := string(tx.Bucket(bucketMeta).Get(keySchema)); v != "2" {
			t.Errorf("schema after migration = %q, want 2", v)
		}
		if v := string(tx.Bucket(bucketPorts).Get([]byte("vnet1"))); !strings.Contains(v, `"name":"vnet1"`) {
			t.Errorf("vnet1 record after migration = %s", v)
		}
		return nil
	})
}

// A v1 record that does not decode does not stop the migration (nor the
// daemon): it is left as it was and reported, naming the port.
func TestMigrateV1BadRecordNamesPort(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	rawDB(t, path, func(tx *bolt.Tx) error {
		p, _ := tx.CreateBucket(bucketPorts)
		if err := p.Put([]byte("vnet1"), []byte(`{"vlan":10}`)); err != nil {
			return err
		}
		return p.Put([]byte("vnetX"), []byte(`{"vlan":`))
	})
	s, err := Open(path)
	if err != nil {
		t.Fatalf("Open of a v1 store with a corrupt record: %v", err)
	}
	defer s.Close()
	good, bad, err := s.Records()
	if err != nil || len(good) != 1 || good[0].Name != "vnet1" || len(bad) != 1 || bad[0].Port != "vnetX" ||
		!strings.Contains(bad[0].Error(), "port vnetX has a corrupt record") {
		t.Fatalf("Records after migration = %+v, %v, %v", good, bad, err)
	}
}

func TestLockedFile(t *testing.T) {
	_, path := openTemp(t)
	start := time.Now()
	s2, err := Open(path)
	if err == nil {
		s2.Close()
		t.Fatal("second Open of the same file succeeded")
	}
	if !errors.Is(err, ErrLocked) {
		t.Errorf("error %v is not ErrLocked", err)
	}
	if want := "state file " + path + " is locked by another vswitchd"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("locked Open took %v", d)
	}
}

func TestCorruptPortRecord(t *testing.T) {
	s, _ := openTemp(t)
	if err := s.PutPort(port.Config{Name: "vnet1", VLAN: 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPorts).Put([]byte("vnet7"), []byte("{not json"))
	}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Ports()
	if err == nil || !strings.Contains(err.Error(), "port vnet7") {
		t.Fatalf("Ports with a corrupt record: %v, want an error naming vnet7", err)
	}
	if _, err := s.Port("vnet7"); err == nil || !strings.Contains(err.Error(), "vnet7") {
		t.Fatalf("Port(vnet7): %v", err)
	}
	// The bad record can still be deleted, which repairs the store.
	if err := s.DeletePort("vnet7"); err != nil {
		t.Fatal(err)
	}
	if ps, err := s.Ports(); err != nil || len(ps) != 1 {
		t.Fatalf("after deleting the corrupt record: %v %v", ps, err)
	}
}

func TestUnreadableSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	rawDB(t, path, func(tx *bolt.Tx) error {
		m, _ := tx.CreateBucket(bucketMeta)
		return m.Put(keySchema, []byte("two"))
	})
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "unreadable schema") {
		t.Fatalf("Open: %v", err)
	}
}

func TestNotABoltFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	if err := os.WriteFile(path, []byte(strings.Repeat("garbage!", 1024)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open of garbage: %v", err)
	}
}

func TestFDBRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if recs, err := s.FDB(); err != nil || len(recs) != 0 {
		t.Fatalf("fresh store FDB = %v, %v", recs, err)
	}
	want := []FDBRecord{{VLAN: 100, MAC: "52:54:00:00:00:01", Port: "vnet1"}, {VLAN: 200, MAC: "52:54:00:00:00:02", Port: "vnet2"}}
	if err := s.SaveFDB(want); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(path); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.FDB()
	if err != nil || len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("FDB after reopen = %v, %v; want %v", got, err, want)
	}
}

// legacyPortConfig is store.PortConfig, the record type before
// port.Config: files written with it must load unchanged.
type legacyPortConfig struct {
	Name       string   `json:"name"`
	VLAN       int      `json:"vlan,omitempty"`
	Trunk      string   `json:"trunk,omitempty"`
	NativeVLAN int      `json:"native_vlan,omitempty"`
	SVID       int      `json:"svid,omitempty"`
	PCP        int      `json:"pcp,omitempty"`
	MACs       []string `json:"macs,omitempty"`
	Flood      bool     `json:"flood_unknown,omitempty"`
}

func TestLegacyRecordsLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	old := []legacyPortConfig{
		{Name: "vnet0", Trunk: "10,20-30", NativeVLAN: 10, Flood: true},
		{Name: "vnet1", VLAN: 100, PCP: 3, SVID: 7, MACs: []string{"52:54:00:12:34:56", "52:54:00:ab:cd:ef"}},
	}
	recs := map[string][]byte{}
	rawDB(t, path, func(tx *bolt.Tx) error {
		m, _ := tx.CreateBucket(bucketMeta)
		if err := m.Put(keySchema, []byte("2")); err != nil {
			return err
		}
		p, _ := tx.CreateBucket(bucketPorts)
		for _, o := range old {
			b, err := json.Marshal(o)
			if err != nil {
				return err
			}
			recs[o.Name] = b
			if err := p.Put([]byte(o.Name), b); err != nil {
				return err
			}
		}
		return nil
	})
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Ports()
	if err != nil {
		t.Fatal(err)
	}
	want := []port.Config{
		{Name: "vnet0", Trunk: trunk(t, "10,20-30"), NativeVLAN: 10, Flood: true},
		{Name: "vnet1", VLAN: 100, PCP: 3, SVID: 7, MACs: []net.HardwareAddr{mac(t, "52:54:00:12:34:56"), mac(t, "52:54:00:ab:cd:ef")}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("legacy records loaded as %+v, want %+v", got, want)
	}
	// Saved again, they are the same bytes.
	for _, c := range got {
		if err := s.PutPort(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.db.View(func(tx *bolt.Tx) error {
		for name, b := range recs {
			if now := tx.Bucket(bucketPorts).Get([]byte(name)); string(now) != string(b) {
				t.Errorf("record %s rewritten as %s, was %s", name, now, b)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// A record that does not decode or breaks the port rules is reported (a
// *RecordError that says how to repair it) without hiding the other ports.
func TestUnusableRecordsReported(t *testing.T) {
	s, _ := openTemp(t)
	if err := s.PutPort(port.Config{Name: "vnet1", VLAN: 1}); err != nil {
		t.Fatal(err)
	}
	for name, rec := range map[string]string{
		"vnet7": "{not json",
		"vnet8": `{"name":"vnet8","vlan":5000}`,
		"vnet9": `{"name":"vnet9","vlan":10,"native_vlan":20}`,
		// The key names the port: a record without a name (v1 form) or
		// with a stale or broken one is checked for its other fields.
		"vnetA": `{"vlan":5000}`,
		"vnetB": `{"name":"not a valid name!","vlan":4095}`,
		"vnetC": `null`,
	} {
		if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketPorts).Put([]byte(name), []byte(rec)) }); err != nil {
			t.Fatal(err)
		}
	}
	ps, err := s.Ports()
	if len(ps) != 1 || ps[0].Name != "vnet1" {
		t.Fatalf("usable ports %+v, want vnet1 only", ps)
	}
	var re *RecordError
	if !errors.As(err, &re) {
		t.Fatalf("Ports error %v has no *RecordError", err)
	}
	for _, want := range []string{
		"port vnet7 has a corrupt record", "delete it with vswctl del-port vnet7 and add it again (vswctl add-port vnet7 replaces it too; with vswitchd stopped: vswitchd --state FILE --drop-port vnet7)",
		"port vnet8 has an invalid record (invalid VLAN 5000: must be 1-4094)",
		"port vnet9 has an invalid record", "a native VLAN needs a trunk port",
		"port vnetA has an invalid record (invalid VLAN 5000: must be 1-4094)",
		"port vnetB has an invalid record (invalid VLAN 4095: must be 1-4094)",
		"port vnetC has an invalid record",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Ports error %q lacks %q", err, want)
		}
	}
	_, err = s.Port("vnet8")
	if !errors.As(err, &re) || re.Port != "vnet8" || errors.Is(err, port.ErrNotFound) {
		t.Fatalf("Port(vnet8) = %v", err)
	}
	// The record's name field does not override the key.
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPorts).Put([]byte("vnet2"), []byte(`{"name":"other","vlan":2}`))
	}); err != nil {
		t.Fatal(err)
	}
	if c, err := s.Port("vnet2"); err != nil || c.Name != "vnet2" {
		t.Fatalf("Port(vnet2) = %+v, %v", c, err)
	}
	// Nor does a name field that breaks the rules: the key is checked.
	for rec, want := range map[string]port.Config{
		`{"name":"not a valid name!","vlan":3}`: {Name: "vnet3", VLAN: 3},
		`{"vlan":4}`:                            {Name: "vnet3", VLAN: 4},
		`{"name":"","trunk":"5-6"}`:             {Name: "vnet3", Trunk: trunk(t, "5-6")},
	} {
		if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketPorts).Put([]byte("vnet3"), []byte(rec)) }); err != nil {
			t.Fatal(err)
		}
		if c, err := s.Port("vnet3"); err != nil || !reflect.DeepEqual(c, want) {
			t.Errorf("record %s: Port(vnet3) = %+v, %v; want %+v", rec, c, err, want)
		}
	}
}

// A v1 record that breaks the port rules is left as it was; it is then
// reported like any unusable record, and the others are migrated.
func TestMigrateV1InvalidRecordLeft(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	rawDB(t, path, func(tx *bolt.Tx) error {
		p, _ := tx.CreateBucket(bucketPorts)
		if err := p.Put([]byte("vnet1"), []byte(`{"vlan":10}`)); err != nil {
			return err
		}
		return p.Put([]byte("vnet2"), []byte(`{"vlan":5000}`))
	})
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ps, err := s.Ports()
	var re *RecordError
	if len(ps) != 1 || ps[0].Name != "vnet1" || ps[0].VLAN != 10 || !errors.As(err, &re) || re.Port != "vnet2" {
		t.Fatalf("after migration: %+v, %v", ps, err)
	}
	// The problem reported is the record's, not the name it lacks.
	if want := "port vnet2 has an invalid record (invalid VLAN 5000: must be 1-4094)"; !strings.Contains(err.Error(), want) {
		t.Errorf("Ports error %q lacks %q", err, want)
	}
}

// v1 records: what the migration makes of them (the key names the port).
func TestMigrateV1Records(t *testing.T) {
	for _, c := range []struct {
		rec     string
		want    *port.Config // nil: left as it was and reported
		problem string       // in the Ports error when want is nil
	}{
		{rec: `{"vlan":7}`, want: &port.Config{Name: "vnet1", VLAN: 7}},
		{rec: `{"vlan":7,"name":"stale"}`, want: &port.Config{Name: "vnet1", VLAN: 7}},
		{rec: `{"vlan":5000}`, problem: "invalid VLAN 5000: must be 1-4094"},
		{rec: `{"vlan":0}`, problem: "invalid record"},
		{rec: `{}`, problem: "invalid record"},
		{rec: `{"vlan":"x"}`, problem: "corrupt record"},
		{rec: `{"vlan":`, problem: "corrupt record"},
	} {
		path := filepath.Join(t.TempDir(), "state.db")
		rawDB(t, path, func(tx *bolt.Tx) error {
			p, _ := tx.CreateBucket(bucketPorts)
			return p.Put([]byte("vnet1"), []byte(c.rec))
		})
		s, err := Open(path)
		if err != nil {
			t.Errorf("v1 record %s: Open: %v", c.rec, err)
			continue
		}
		ps, err := s.Ports()
		s.Close()
		switch {
		case c.want != nil:
			if err != nil || len(ps) != 1 || !reflect.DeepEqual(ps[0], *c.want) {
				t.Errorf("v1 record %s: Ports = %+v, %v; want %+v", c.rec, ps, err, *c.want)
			}
		case err == nil || len(ps) != 0 || !strings.Contains(err.Error(), "port vnet1 has a") ||
			!strings.Contains(err.Error(), c.problem) || strings.Contains(err.Error(), "interface name"):
			t.Errorf("v1 record %s: Ports = %+v, %v; want the record reported for %q", c.rec, ps, err, c.problem)
		}
	}
}

// The largest FDB snapshot SaveFDB writes reads back whole: MaxFDBRecords
// entries on VLAN 4094 with 15-byte port names of the characters JSON
// escapes (before: '<' took six bytes, the snapshot went over the reader's
// bound and every saved MAC was lost at the next start; found in review).
func TestSavedFDBReadsBack(t *testing.T) {
	for _, ch := range []string{"<", "&", `"`, `\`} {
		s, err := Open(filepath.Join(t.TempDir(), "state.db"))
		if err != nil {
			t.Fatal(err)
		}
		name := strings.Repeat(ch, 15)
		recs := make([]FDBRecord, MaxFDBRecords)
		for i := range recs {
			recs[i] = FDBRecord{VLAN: 4094, MAC: fmt.Sprintf("52:54:00:%02x:%02x:%02x", i>>16, i>>8&0xff, i&0xff), Port: name}
		}
		if err := s.SaveFDB(recs); err != nil {
			t.Fatalf("%q: SaveFDB: %v", ch, err)
		}
		got, err := s.FDB()
		if err != nil || len(got) != len(recs) || got[len(got)-1] != recs[len(recs)-1] {
			t.Errorf("%q: SaveFDB took %d entries; FDB gives %d back: %v", ch, len(recs), len(got), err)
		}
		s.Close()
	}
}
