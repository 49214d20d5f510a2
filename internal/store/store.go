package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/vswitch/vswitch/pkg/port"
)

// currentSchema is the schema version this build writes and understands.
const currentSchema = 2

// DefaultPath is where vswitchd keeps its state unless told otherwise.
const DefaultPath = "/var/lib/vswitchd/state.db"

// defaultMode is the forwarding mode of a store that never recorded one.
const defaultMode = "vepa"

var (
	bucketMeta  = []byte("meta")
	bucketPorts = []byte("ports")

	keySchema = []byte("schema")
	keyUplink = []byte("uplink")
	keyMode   = []byte("mode")
)

// Sentinel errors; test with errors.Is. A port that is not in the store
// is port.ErrNotFound.
var (
	// ErrLocked: another process holds the state file.
	ErrLocked = errors.New("state file is locked")
	// ErrNewerSchema: the file was written by a newer vswitchd.
	ErrNewerSchema = errors.New("state file schema is newer than this vswitchd")
)

// Store is an open state file. Its methods are safe for concurrent use.
type Store struct {
	db    *bolt.DB
	path  string
	notes []string
}

// Open opens the state file at path for the daemon, creating it (and its
// directory) if there is none. It never crashes on what it reads:
//
//   - a file another process holds is ErrLocked;
//   - a damaged file (empty, truncated, a page or both meta pages
//     destroyed, a failed consistency check) is a *DamageError, one line
//     that says how to recover; the file is left as it is;
//   - a file of a newer schema is ErrNewerSchema; an older one is migrated;
//   - what the store copes with (one torn meta page, space lost to
//     unreachable pages, a missing bucket) is in Notes.
//
// Port records are not judged here: Records reports the unusable ones.
func Open(path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("open state file: empty path")
	}
	o, err := openChecked(path, true)
	if err != nil {
		return nil, err
	}
	s := &Store{db: o.db, path: path, notes: o.notes}
	if err := guard(path, func() error { return s.init(o.fresh) }); err != nil {
		o.db.Close()
		return nil, err
	}
	return s, nil
}

// view runs a read transaction under guard: reads are what a restarted
// daemon does first, so whatever the file holds they give an error, never
// a crash. (bbolt rolls the transaction back when it panics.)
func (s *Store) view(fn func(tx *bolt.Tx) error) error {
	return guard(s.path, func() error { return s.db.View(fn) })
}

// Notes are what Open found and coped with, for the operator: each is one
// line, and the daemon logs them and shows them in its status.
func (s *Store) Notes() []string { return s.notes }

// Path is the file the store was opened from.
func (s *Store) Path() string { return s.path }

// Close releases the file and its lock.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close state file %s: %w", s.path, err)
	}
	return nil
}

// migrations[v] upgrades a store from schema v to v+1 inside tx.
var migrations = map[int]func(tx *bolt.Tx) error{
	1: migrateV1toV2,
}

// init creates the buckets of a fresh file, or checks and migrates an
// existing one, all in one transaction.
func (s *Store) init(fresh bool) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		var schema []byte
		if meta != nil {
			schema = meta.Get(keySchema)
		}
		version, note, err := schemaOf(meta != nil, tx.Bucket(bucketPorts) != nil, schema, fresh)
		if note != "" {
			s.notes = append(s.notes, note)
		}
		switch {
		case errors.Is(err, ErrNewerSchema):
			return fmt.Errorf("state file %s has schema v%d, this vswitchd understands up to v%d: upgrade vswitchd (the file is left as it is): %w",
				s.path, version, currentSchema, ErrNewerSchema)
		case err != nil:
			return &DamageError{Path: s.path, Problem: err.Error()}
		}
		if meta, err = tx.CreateBucketIfNotExists(bucketMeta); err != nil {
			return s.bucketError(bucketMeta, err)
		}
		if _, err = tx.CreateBucketIfNotExists(bucketPorts); err != nil {
			return s.bucketError(bucketPorts, err)
		}
		for v := version; v < currentSchema; v++ {
			m, ok := migrations[v]
			if !ok {
				return fmt.Errorf("state file %s has schema v%d and no migration from it exists", s.path, v)
			}
			if err := m(tx); err != nil {
				return fmt.Errorf("migrate state file %s from schema v%d to v%d: %w", s.path, v, v+1, err)
			}
		}
		if err := meta.Put(keySchema, []byte(strconv.Itoa(currentSchema))); err != nil {
			return fmt.Errorf("write schema version to %s: %w", s.path, err)
		}
		return nil
	})
	// Every error above already names the file.
	return err
}

// bucketError is the error of creating top-level bucket name: damage when
// the file holds a plain value under that name (found by FuzzScanBolt:
// bbolt's Bucket says nil for it, so it looked missing).
func (s *Store) bucketError(name []byte, err error) error {
	if errors.Is(err, bolterrors.ErrIncompatibleValue) {
		return &DamageError{Path: s.path, Problem: fmt.Sprintf("its top-level %q is a value, not a bucket", name)}
	}
	return fmt.Errorf("create %s bucket in %s: %w", name, s.path, err)
}

// schemaOf says which schema a file is in from its top-level buckets and
// its meta bucket's schema key (nil: none), and notes a file that lost
// its data. fresh: the file was just created.
//
//   - no buckets: a new file (noted unless fresh: a first start that did
//     not finish, or buckets deleted by hand; the daemon starts with no
//     ports);
//   - a schema key: that version; unreadable is damage, newer than
//     currentSchema is ErrNewerSchema (version is then the file's);
//   - buckets without a schema key: v1, which did not record one;
//   - v2 and later without the ports bucket: noted (no ports).
func schemaOf(hasMeta, hasPorts bool, schema []byte, fresh bool) (version int, note string, err error) {
	switch {
	case !hasMeta && !hasPorts:
		if !fresh {
			note = "the state file holds no vswitchd data (an interrupted first start, or emptied by hand): starting with no ports"
		}
		return currentSchema, note, nil
	case schema != nil:
		v, err := strconv.Atoi(string(schema))
		if err != nil || v < 1 {
			return 0, "", fmt.Errorf("unreadable schema version %q", schema)
		}
		if v > currentSchema {
			return v, "", ErrNewerSchema
		}
		version = v
	default:
		version = 1
	}
	if version >= 2 && !hasPorts {
		note = "the state file has no ports bucket (damaged or edited by hand): starting with no ports"
	}
	return version, note, nil
}

// migrateV1toV2 gives each v1 port record ({"vlan":N}: the name was only
// the key) its v2 form. A v1 record is a v2 record without the name, so it
// is decoded as Records decodes one (decodeRecord: the key names the
// port, then the port rules are checked). One that does not decode or
// breaks the rules is left as it is, and Records reports it: one bad
// record never stops the daemon.
func migrateV1toV2(tx *bolt.Tx) error {
	ports := tx.Bucket(bucketPorts)
	type record struct{ k, v []byte }
	var rewritten []record
	err := ports.ForEach(func(k, v []byte) error {
		c, err := decodeRecord(string(k), v)
		if err != nil {
			return nil // left for Records to report
		}
		b, err := json.Marshal(c)
		if err != nil {
			return fmt.Errorf("encode port %q: %w", k, err)
		}
		rewritten = append(rewritten, record{append([]byte(nil), k...), b})
		return nil
	})
	if err != nil {
		return err
	}
	// Writing while iterating with ForEach is not allowed: do it after.
	for _, p := range rewritten {
		if err := ports.Put(p.k, p.v); err != nil {
			return err
		}
	}
	meta := tx.Bucket(bucketMeta)
	if meta.Get(keyMode) == nil {
		return meta.Put(keyMode, []byte(defaultMode))
	}
	return nil
}

// SetUplink records the uplink interface and the configured mode.
func (s *Store) SetUplink(name, mode string) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if err := meta.Put(keyUplink, []byte(name)); err != nil {
			return err
		}
		return meta.Put(keyMode, []byte(mode))
	})
	if err != nil {
		return fmt.Errorf("save uplink %s in %s: %w", name, s.path, err)
	}
	return nil
}

// Uplink returns the recorded uplink and mode; both are "" in a fresh store.
func (s *Store) Uplink() (name, mode string, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		name = string(meta.Get(keyUplink))
		mode = string(meta.Get(keyMode))
		return nil
	})
	if err != nil {
		return "", "", fmt.Errorf("read uplink from %s: %w", s.path, err)
	}
	return name, mode, nil
}

// PutPort creates or replaces the port c.Name (an unusable record of that
// name too); c must be valid (port.Config.Validate) and its record no
// longer than a port record can be.
func (s *Store) PutPort(c port.Config) error {
	b, err := encodePort(c)
	if err != nil {
		return fmt.Errorf("save port %s: %w", c.Name, err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPorts).Put([]byte(c.Name), b)
	})
	if err != nil {
		return fmt.Errorf("save port %s in %s: %w", c.Name, s.path, err)
	}
	return nil
}

// DeletePort removes a port; errors.Is(err, port.ErrNotFound) if it was
// absent. A record Port and Ports cannot use is deleted all the same.
func (s *Store) DeletePort(name string) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPorts)
		if b.Get([]byte(name)) == nil {
			return port.ErrNotFound
		}
		return b.Delete([]byte(name))
	})
	if err != nil {
		return fmt.Errorf("delete port %s from %s: %w", name, s.path, err)
	}
	return nil
}

// Port returns one port; errors.Is(err, port.ErrNotFound) if it is absent,
// a *RecordError if its record cannot be used.
func (s *Store) Port(name string) (port.Config, error) {
	var c port.Config
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketPorts).Get([]byte(name))
		if v == nil {
			return port.ErrNotFound
		}
		var err error
		c, err = decodePort(name, v)
		return err
	})
	if err != nil {
		return port.Config{}, fmt.Errorf("read port %s from %s: %w", name, s.path, err)
	}
	return c, nil
}

// Ports returns every usable port, sorted by name. A record that cannot
// be used does not hide the others: they are returned together with an
// error joining one *RecordError per such record (errors.As finds them),
// so a caller may go on without it. Records returns both apart.
func (s *Store) Ports() ([]port.Config, error) {
	out, bad, err := s.Records()
	if err != nil {
		return nil, err
	}
	if len(bad) > 0 {
		errs := make([]error, len(bad))
		for i, e := range bad {
			errs[i] = e
		}
		return out, fmt.Errorf("read ports from %s: %w", s.path, errors.Join(errs...))
	}
	return out, nil
}

// Records returns every port record: the usable ones as port.Config and
// the others as *RecordError, each list sorted by name.
func (s *Store) Records() ([]port.Config, []*RecordError, error) {
	var out []port.Config
	var bad []*RecordError
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPorts).ForEach(func(k, v []byte) error {
			c, err := decodePort(string(k), v)
			var re *RecordError
			if errors.As(err, &re) {
				bad = append(bad, re)
				return nil
			}
			out = append(out, c)
			return nil
		})
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read ports from %s: %w", s.path, err)
	}
	// bbolt iterates in byte order already; sort anyway so the contract
	// does not depend on it.
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	sort.Slice(bad, func(i, j int) bool { return bad[i].Port < bad[j].Port })
	return out, bad, nil
}

var keyFDB = []byte("fdb")

// SaveFDB replaces the saved forwarding entries with recs, of which it
// keeps the first MaxFDBRecords.
func (s *Store) SaveFDB(recs []FDBRecord) error {
	b, err := encodeFDB(recs)
	if err != nil {
		return err
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyFDB, b) }); err != nil {
		return fmt.Errorf("save FDB in %s: %w", s.path, err)
	}
	return nil
}

// FDB returns the saved forwarding entries (none when never saved). A
// snapshot that cannot be read (or is over its bounds) is an error: the
// entries are learned again.
func (s *Store) FDB() ([]FDBRecord, error) {
	var recs []FDBRecord
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketMeta).Get(keyFDB)
		if v == nil {
			return nil
		}
		var err error
		recs, err = decodeFDB(v)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read FDB from %s: %w (learned entries are learned again)", s.path, err)
	}
	return recs, nil
}
