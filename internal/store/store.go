package store

import (
	"bytes"
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
)

// CurrentSchema is the schema version this build writes and understands.
const CurrentSchema = 2

// DefaultPath is where vswitchd keeps its state unless told otherwise.
const DefaultPath = "/var/lib/vswitchd/state.db"

// DefaultMode is the forwarding mode of a store that never recorded one.
const DefaultMode = "vepa"

// lockTimeout bounds how long Open waits for another process's flock.
const lockTimeout = 1500 * time.Millisecond

var (
	bucketMeta  = []byte("meta")
	bucketPorts = []byte("ports")

	keySchema = []byte("schema")
	keyUplink = []byte("uplink")
	keyMode   = []byte("mode")
)

// Sentinel errors; test with errors.Is.
var (
	// ErrNotFound: the port (or other object) is not in the store.
	ErrNotFound = errors.New("not found")
	// ErrLocked: another process holds the state file.
	ErrLocked = errors.New("state file is locked")
	// ErrNewerSchema: the file was written by a newer vswitchd.
	ErrNewerSchema = errors.New("state file schema is newer than this vswitchd")
)

// PortConfig is the persistent configuration of one port. It holds only what
// the operator configured, never runtime state or counters.
type PortConfig struct {
	Name string `json:"name"`
	// VLAN is the access VID (1-4094); 0 for a trunk port.
	VLAN int `json:"vlan,omitempty"`
	// Trunk is the allowed VID set of a trunk port in canonical form
	// ("10,20-30"); empty for an access port.
	Trunk      string   `json:"trunk,omitempty"`
	NativeVLAN int      `json:"native_vlan,omitempty"`
	SVID       int      `json:"svid,omitempty"`
	PCP        int      `json:"pcp,omitempty"`
	MACs       []string `json:"macs,omitempty"`
	Flood      bool     `json:"flood_unknown,omitempty"`
}

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
			version = CurrentSchema
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
		if version > CurrentSchema {
			return fmt.Errorf("state file %s has schema v%d, this vswitchd understands up to v%d: upgrade vswitchd: %w",
				s.path, version, CurrentSchema, ErrNewerSchema)
		}
		var err error
		if meta, err = tx.CreateBucketIfNotExists(bucketMeta); err != nil {
			return fmt.Errorf("create meta bucket in %s: %w", s.path, err)
		}
		if _, err = tx.CreateBucketIfNotExists(bucketPorts); err != nil {
			return fmt.Errorf("create ports bucket in %s: %w", s.path, err)
		}
		for v := version; v < CurrentSchema; v++ {
			m, ok := migrations[v]
			if !ok {
				return fmt.Errorf("state file %s has schema v%d and no migration from it exists", s.path, v)
			}
			if err := m(tx); err != nil {
				return fmt.Errorf("migrate state file %s from schema v%d to v%d: %w", s.path, v, v+1, err)
			}
		}
		if err := meta.Put(keySchema, []byte(strconv.Itoa(CurrentSchema))); err != nil {
			return fmt.Errorf("write schema version to %s: %w", s.path, err)
		}
		return nil
	})
	// Every error above already names the file.
	return err
}

// v1Port is how schema v1 stored a port (the name was only the key).
type v1Port struct {
	VLAN int `json:"vlan"`
}

func migrateV1toV2(tx *bolt.Tx) error {
	ports := tx.Bucket(bucketPorts)
	type kv struct{ k, v []byte }
	var rewritten []kv
	err := ports.ForEach(func(k, v []byte) error {
		var old v1Port
		if err := json.Unmarshal(v, &old); err != nil {
			return fmt.Errorf("decode v1 port %q: %w", k, err)
		}
		b, err := json.Marshal(PortConfig{Name: string(k), VLAN: old.VLAN})
		if err != nil {
			return err
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
		return meta.Put(keyMode, []byte(DefaultMode))
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

// PutPort creates or replaces the port p.Name.
func (s *Store) PutPort(p PortConfig) error {
	if p.Name == "" {
		return errors.New("save port: empty name")
	}
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode port %s: %w", p.Name, err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPorts).Put([]byte(p.Name), b)
	})
	if err != nil {
		return fmt.Errorf("save port %s in %s: %w", p.Name, s.path, err)
	}
	return nil
}

// DeletePort removes a port; errors.Is(err, ErrNotFound) if it was absent.
func (s *Store) DeletePort(name string) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPorts)
		if b.Get([]byte(name)) == nil {
			return ErrNotFound
		}
		return b.Delete([]byte(name))
	})
	if err != nil {
		return fmt.Errorf("delete port %s from %s: %w", name, s.path, err)
	}
	return nil
}

// Port returns one port; errors.Is(err, ErrNotFound) if it is absent.
func (s *Store) Port(name string) (PortConfig, error) {
	var p PortConfig
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketPorts).Get([]byte(name))
		if v == nil {
			return ErrNotFound
		}
		return decodePort(name, v, &p)
	})
	if err != nil {
		return PortConfig{}, fmt.Errorf("read port %s from %s: %w", name, s.path, err)
	}
	return p, nil
}

// Ports returns every port, sorted by name.
func (s *Store) Ports() ([]PortConfig, error) {
	var out []PortConfig
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPorts).ForEach(func(k, v []byte) error {
			var p PortConfig
			if err := decodePort(string(k), v, &p); err != nil {
				return err
			}
			out = append(out, p)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read ports from %s: %w", s.path, err)
	}
	// bbolt iterates in byte order already; sort anyway so the contract
	// does not depend on it.
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func decodePort(name string, v []byte, p *PortConfig) error {
	dec := json.NewDecoder(bytes.NewReader(v))
	if err := dec.Decode(p); err != nil {
		return fmt.Errorf("port %s has a corrupt record (%w): delete it with vswctl del-port %s and add it again", name, err, name)
	}
	// The key is authoritative.
	p.Name = name
	return nil
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
