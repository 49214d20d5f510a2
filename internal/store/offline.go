package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"

	"github.com/vswitch/vswitch/pkg/port"
)

// The offline commands (vswitchd --check, --drop-port, --salvage): they
// work on a file the daemon cannot start with, and refuse one a running
// daemon holds (ErrLocked), since the daemon's view of it would no longer
// be the file's.

// Report is what Check found in a state file.
type Report struct {
	Path     string
	Size     int64
	PageSize int
	Txid     uint64 // the transaction of the meta page in use
	Schema   int    // 0: unknown
	Uplink   string
	Mode     string
	// Ports are the usable port records, Bad the unusable ones (the
	// daemon keeps those down until they are replaced or deleted).
	Ports []port.Config
	Bad   []*RecordError
	// FDB is the number of saved learned MACs.
	FDB int
	// Problems are damage: the daemon refuses the file (a newer schema
	// too). Notes are what it copes with.
	Problems []string
	Notes    []string
}

// OK reports whether the daemon starts with the file and every port in it.
func (r *Report) OK() bool { return len(r.Problems) == 0 && len(r.Bad) == 0 }

// WriteTo prints the report for the operator.
func (r *Report) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "state file %s: %d bytes", r.Path, r.Size)
	if r.PageSize != 0 {
		fmt.Fprintf(&b, ", page size %d, transaction %d", r.PageSize, r.Txid)
	}
	if r.Schema != 0 {
		fmt.Fprintf(&b, ", schema v%d", r.Schema)
	}
	b.WriteString("\n")
	if r.Uplink != "" || r.Mode != "" {
		fmt.Fprintf(&b, "uplink %s, mode %s\n", dash(r.Uplink), dash(r.Mode))
	}
	fmt.Fprintf(&b, "ports: %d usable, %d unusable\n", len(r.Ports), len(r.Bad))
	for _, c := range r.Ports {
		rec, _ := json.Marshal(c)
		fmt.Fprintf(&b, "  %-15s %s\n", c.Name, rec)
	}
	for _, e := range r.Bad {
		fmt.Fprintf(&b, "  %-15s UNUSABLE: %v\n", e.Port, e)
	}
	fmt.Fprintf(&b, "saved learned MACs: %d\n", r.FDB)
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "problem: %s\n", p)
	}
	switch {
	case len(r.Problems) > 0:
		fmt.Fprintf(&b, "verdict: vswitchd refuses this file; copy its readable ports into a new one with vswitchd --state %s --check --salvage NEWFILE, then start with --state NEWFILE\n", r.Path)
	case len(r.Bad) > 0:
		b.WriteString("verdict: vswitchd starts with this file; the unusable ports stay down until deleted or replaced (vswctl del-port NAME or add-port NAME, or vswitchd --state FILE --drop-port NAME while it is stopped)\n")
	default:
		b.WriteString("verdict: vswitchd starts with this file\n")
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Check reads the state file at path without changing it and reports its
// layout, ports and problems. It reads a damaged file as far as it can.
// The error is for a file it cannot read at all: missing, or held by a
// running vswitchd (ErrLocked).
func Check(path string) (*Report, error) {
	r, _, err := check(path)
	return r, err
}

// check is Check that also returns the scan, for Salvage.
func check(path string) (*Report, *boltScan, error) {
	f, err := lockFile(path, false)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	sc, db, err := inspect(path, f, false, true)
	if err != nil {
		return nil, nil, err
	}
	if db != nil {
		// Everything is read from the scan; bbolt only checked.
		_ = guard(path, db.Close)
	}
	r := &Report{Path: path, Size: sc.size, PageSize: sc.pageSize, Problems: sc.problems, Notes: sc.notes}
	if sc.missed > 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("and %d more problems", sc.missed))
	}
	if sc.meta == nil {
		return r, sc, nil
	}
	r.Txid = sc.meta.txid
	meta, hasMeta := sc.buckets[string(bucketMeta)]
	portRecs, hasPorts := sc.buckets[string(bucketPorts)]
	values := map[string]kv{}
	for _, e := range meta {
		values[string(e.key)] = e
	}
	var schema []byte
	if e, ok := values[string(keySchema)]; ok {
		schema = e.val
	}
	v, note, err := schemaOf(hasMeta, hasPorts, schema, false)
	switch {
	case errors.Is(err, ErrNewerSchema):
		r.Schema = v
		r.Problems = append(r.Problems, fmt.Sprintf("schema v%d is newer than this vswitchd's v%d: use a newer vswitchd", v, currentSchema))
	case err != nil:
		r.Problems = append(r.Problems, err.Error())
	default:
		r.Schema = v
	}
	if note != "" && len(sc.problems) == 0 {
		r.Notes = append(r.Notes, note)
	}
	r.Uplink, r.Mode = string(values[string(keyUplink)].val), string(values[string(keyMode)].val)
	if e, ok := values[string(keyFDB)]; ok {
		recs, err := decodeFDB(e.val)
		if err != nil {
			r.Notes = append(r.Notes, fmt.Sprintf("the saved learned MACs are unusable (%v): they are learned again", err))
		}
		r.FDB = len(recs)
	}
	for _, e := range portRecs {
		var c port.Config
		var err error
		if e.val == nil {
			err = &RecordError{Port: string(e.key), Err: recordTooLong(e.size)}
		} else {
			c, err = decodePort(string(e.key), e.val)
		}
		var re *RecordError
		if errors.As(err, &re) {
			r.Bad = append(r.Bad, re)
			continue
		}
		r.Ports = append(r.Ports, c)
	}
	sort.Slice(r.Ports, func(i, j int) bool { return r.Ports[i].Name < r.Ports[j].Name })
	sort.Slice(r.Bad, func(i, j int) bool { return r.Bad[i].Port < r.Bad[j].Port })
	return r, sc, nil
}

// DropPort deletes port name's record from the state file at path, usable
// or not, while no daemon runs (ErrLocked otherwise). The file must pass
// the checks Open makes (a damaged file is salvaged instead);
// errors.Is(err, port.ErrNotFound) if there is no such record.
func DropPort(path, name string) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("state file %s: %w", path, err)
	}
	s, err := Open(path)
	if err != nil {
		return err
	}
	if err := s.DeletePort(name); err != nil {
		s.Close()
		if errors.Is(err, port.ErrNotFound) {
			return fmt.Errorf("state file %s has no port %s: %w", path, name, port.ErrNotFound)
		}
		return err
	}
	return s.Close()
}

// Salvage copies what is usable in the state file at path, damaged or
// not, into a new state file dst: the uplink and mode and every usable
// port record (the saved learned MACs are not copied: they are learned
// again). It reports what it found (Check's report: the ports it lists as
// usable are the ones copied) and refuses to overwrite dst or to read a
// file of a newer schema.
func Salvage(path, dst string) (*Report, error) {
	if _, err := os.Lstat(dst); !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("salvage into %s: it exists already; name a new file", dst)
	}
	r, _, err := check(path)
	if err != nil {
		return nil, err
	}
	if r.Schema > currentSchema {
		return r, fmt.Errorf("salvage %s: its schema v%d is newer than this vswitchd's v%d: use a newer vswitchd", path, r.Schema, currentSchema)
	}
	s, err := Open(dst)
	if err != nil {
		return r, fmt.Errorf("salvage into %s: %w", dst, err)
	}
	if r.Uplink != "" {
		mode := r.Mode
		if mode == "" {
			mode = defaultMode
		}
		if err := s.SetUplink(r.Uplink, mode); err != nil {
			s.Close()
			return r, fmt.Errorf("salvage into %s: %w", dst, err)
		}
	}
	for _, c := range r.Ports {
		if err := s.PutPort(c); err != nil {
			s.Close()
			return r, fmt.Errorf("salvage into %s: %w", dst, err)
		}
	}
	if err := s.Close(); err != nil {
		return r, fmt.Errorf("salvage into %s: %w", dst, err)
	}
	return r, nil
}
