package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/vswitch/vswitch/pkg/port"
)

// currentSchema is the schema version this build writes and understands.
const currentSchema = 2

// DefaultPath is where vswitchd keeps its state unless told otherwise.
const DefaultPath = "/var/lib/vswitchd/state.db"

// defaultMode is the forwarding mode of a store that never recorded one.
const defaultMode = "vepa"

// lockTimeout bounds how long Open waits for another process's flock.
const lockTimeout = 1500 * time.Millisecond

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

// RecordError is a port record the store cannot use: it does not decode
// (corrupt) or it breaks the port rules (invalid; Err is then the
// *port.Error). Its message names the port and says how to repair it.
type RecordError struct {
	Port string
	Err  error
}

func (e *RecordError) Error() string {
	what := "a corrupt"
	var pe *port.Error
	if errors.As(e.Err, &pe) {
		what = "an invalid"
	}
	return fmt.Sprintf("port %s has %s record (%v): delete it with vswctl del-port %s and add it again", e.Port, what, e.Err, e.Port)
}

func (e *RecordError) Unwrap() error { return e.Err }

// Store is an open state file. Its methods are safe for concurrent use.
type Store struct {
	db   *bolt.DB
	path string
}

// Open opens (creating if needed) the state file at path, migrating an older
// schema and refusing a newer one.
func Open(path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("open state file: empty path")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create directory for state file %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("state file %s is locked by another vswitchd (stop it, or use a different --state): %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	s := &Store{db: db, path: path}
	if err := s.init(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

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
func (s *Store) init() error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		ports := tx.Bucket(bucketPorts)
		version := 0
		switch {
		case meta == nil && ports == nil:
			// Fresh file.
			version = currentSchema
		case meta != nil && meta.Get(keySchema) != nil:
			v, err := strconv.Atoi(string(meta.Get(keySchema)))
			if err != nil || v < 1 {
				return fmt.Errorf("state file %s has an unreadable schema version %q", s.path, meta.Get(keySchema))
			}
			version = v
		default:
			// Buckets but no version: written by v1, which did not record one.
			version = 1
		}
		if version > currentSchema {
			return fmt.Errorf("state file %s has schema v%d, this vswitchd understands up to v%d: upgrade vswitchd: %w",
				s.path, version, currentSchema, ErrNewerSchema)
		}
		var err error
		if meta, err = tx.CreateBucketIfNotExists(bucketMeta); err != nil {
			return fmt.Errorf("create meta bucket in %s: %w", s.path, err)
		}
		if _, err = tx.CreateBucketIfNotExists(bucketPorts); err != nil {
			return fmt.Errorf("create ports bucket in %s: %w", s.path, err)
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

// migrateV1toV2 gives each v1 port record ({"vlan":N}: the name was only
// the key) its v2 form. A v1 record is a v2 record without the name, so it
// is decoded as Ports decodes one (decodeRecord: the key names the port,
// then the port rules are checked); one that breaks the rules is left as
// it is, and Ports reports it. A record that does not decode (not JSON, a
// field of the wrong type) fails the migration.
func migrateV1toV2(tx *bolt.Tx) error {
	ports := tx.Bucket(bucketPorts)
	type kv struct{ k, v []byte }
	var rewritten []kv
	err := ports.ForEach(func(k, v []byte) error {
		c, err := decodeRecord(string(k), v)
		var pe *port.Error
		switch {
		case errors.As(err, &pe):
			return nil // breaks the port rules: left for Ports to report
		case err != nil:
			return fmt.Errorf("decode v1 port %q: %w", k, err)
		}
		b, err := json.Marshal(c)
		if err != nil {
			return fmt.Errorf("encode port %q: %w", k, err)
		}
		rewritten = append(rewritten, kv{append([]byte(nil), k...), b})
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
	err = s.db.View(func(tx *bolt.Tx) error {
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

// PutPort creates or replaces the port c.Name; c must be valid
// (port.Config.Validate).
func (s *Store) PutPort(c port.Config) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("save port %s: %w", c.Name, err)
	}
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode port %s: %w", c.Name, err)
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
	err := s.db.View(func(tx *bolt.Tx) error {
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

// Ports returns every port, sorted by name. A record that cannot be used
// does not hide the others: they are returned together with an error
// joining one *RecordError per such record (errors.As finds them), so a
// caller may go on without it.
func (s *Store) Ports() ([]port.Config, error) {
	var out []port.Config
	var bad []error
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPorts).ForEach(func(k, v []byte) error {
			c, err := decodePort(string(k), v)
			if err != nil {
				bad = append(bad, err)
				return nil
			}
			out = append(out, c)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read ports from %s: %w", s.path, err)
	}
	// bbolt iterates in byte order already; sort anyway so the contract
	// does not depend on it.
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if len(bad) > 0 {
		return out, fmt.Errorf("read ports from %s: %w", s.path, errors.Join(bad...))
	}
	return out, nil
}

// decodePort decodes and validates the record of port name; the error is
// a *RecordError.
func decodePort(name string, v []byte) (port.Config, error) {
	c, err := decodeRecord(name, v)
	if err != nil {
		return port.Config{}, &RecordError{Port: name, Err: err}
	}
	return c, nil
}

// decodeRecord decodes the record of port name with the key as the
// authority for the name: the raw record is read, its name field (absent
// in a v1 record, possibly stale or broken in a v2 one) replaced by the
// key, and only then decoded and checked against the port rules
// (port.Config.UnmarshalJSON), so the error is about the record's fields,
// not about a name the key overrides.
func decodeRecord(name string, v []byte) (port.Config, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(v, &raw); err != nil {
		return port.Config{}, err
	}
	if raw == nil { // the record is null
		raw = map[string]json.RawMessage{}
	}
	n, err := json.Marshal(name)
	if err != nil {
		return port.Config{}, err
	}
	raw["name"] = n
	b, err := json.Marshal(raw)
	if err != nil {
		return port.Config{}, err
	}
	var c port.Config
	if err := json.Unmarshal(b, &c); err != nil {
		return port.Config{}, err
	}
	return c, nil
}

// FDBRecord is one learned forwarding entry kept across restarts, so a
// restarted daemon still knows where the VMs are (VMs that keep their ARP
// caches send unicast at once, and unknown unicast is dropped).
type FDBRecord struct {
	VLAN int    `json:"vlan"`
	MAC  string `json:"mac"`
	Port string `json:"port"`
}

var keyFDB = []byte("fdb")

// SaveFDB replaces the saved forwarding entries.
func (s *Store) SaveFDB(recs []FDBRecord) error {
	b, err := json.Marshal(recs)
	if err != nil {
		return fmt.Errorf("encode FDB: %w", err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyFDB, b) }); err != nil {
		return fmt.Errorf("save FDB in %s: %w", s.path, err)
	}
	return nil
}

// FDB returns the saved forwarding entries (none when never saved).
func (s *Store) FDB() ([]FDBRecord, error) {
	var recs []FDBRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketMeta).Get(keyFDB)
		if v == nil {
			return nil
		}
		return json.Unmarshal(v, &recs)
	})
	if err != nil {
		return nil, fmt.Errorf("read FDB from %s: %w (it is rebuilt by learning; delete the file's fdb key or ignore)", s.path, err)
	}
	return recs, nil
}
