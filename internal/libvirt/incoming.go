package libvirt

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/vswitch/vswitch/internal/uuid"
)

// IncomingTTL is how long each step of an incoming migration's note
// lasts: from "migrate begin" to the domain's "prepare begin", and from
// that to its "start begin". libvirt runs them within seconds of each
// other on a migration that goes on (qemuMigrationDstPrepareAny runs the
// migrate hook, then qemuProcessInit and qemuProcessLaunch the prepare and
// start hooks). A note older than this is of a migration that did not go
// on here: an offline one (libvirt runs "migrate begin" and nothing
// more), or one that failed before its QEMU started; a later plain start
// of the domain must not take it.
const IncomingTTL = 30 * time.Second

// The stages of a note: its content.
var (
	stageMigrate  = []byte("migrate\n")  // "migrate begin" ran
	stagePrepared = []byte("prepared\n") // then "prepare begin"
)

// IncomingMarks remembers the domains migrating to this host from their
// "migrate begin" hook call to their "start begin" (separate processes):
// one small file per domain, named by its UUID, in Dir. "migrate begin"
// writes it (Mark), the domain's next "prepare begin" moves it on
// (Prepare) and its "start begin" takes it (Take); each step must come
// within TTL (IncomingTTL when zero) of the one before, or the note does
// not count and is removed. Expired notes are also removed by the next
// Mark, so the directory holds at most the domains that began migrating
// here within TTL.
type IncomingMarks struct {
	Dir string
	TTL time.Duration
}

func (m IncomingMarks) ttl() time.Duration {
	if m.TTL <= 0 {
		return IncomingTTL
	}
	return m.TTL
}

// path is the note's file of a domain UUID (in any case; checked, so that
// what libvirt passes never names another file).
func (m IncomingMarks) path(domain string) (string, error) {
	u, err := uuid.Parse(domain)
	if err != nil {
		return "", fmt.Errorf("libvirt: domain UUID: %w", err)
	}
	return filepath.Join(m.Dir, u.String()), nil
}

// write writes the note at stage, fresh.
func write(p string, stage []byte) error {
	if err := os.WriteFile(p, stage, 0o600); err != nil {
		return fmt.Errorf("libvirt: note the incoming migration: %w", err)
	}
	now := time.Now()
	return os.Chtimes(p, now, now) // a note rewritten is fresh again
}

// take removes the domain's note and reports whether it was at stage and
// fresh.
func (m IncomingMarks) take(domain string, stage []byte) (bool, string, error) {
	p, err := m.path(domain)
	if err != nil {
		return false, "", err
	}
	info, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, p, nil
	}
	if err != nil {
		return false, p, fmt.Errorf("libvirt: incoming migration note: %w", err)
	}
	got, rerr := os.ReadFile(p)
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, p, fmt.Errorf("libvirt: incoming migration note: %w", err)
	}
	return rerr == nil && bytes.Equal(got, stage) && time.Since(info.ModTime()) <= m.ttl(), p, nil
}

// Mark notes that the domain (its UUID) is migrating in ("migrate
// begin"). It creates Dir (0700) when needed and removes the notes that
// expired.
func (m IncomingMarks) Mark(domain string) error {
	p, err := m.path(domain)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(m.Dir, 0o700); err != nil {
		return fmt.Errorf("libvirt: note the incoming migration: %w", err)
	}
	if es, err := os.ReadDir(m.Dir); err == nil {
		for _, e := range es {
			if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > m.ttl() {
				_ = os.Remove(filepath.Join(m.Dir, e.Name()))
			}
		}
	}
	return write(p, stageMigrate)
}

// Prepare moves the domain's note on at its "prepare begin": a note of
// "migrate begin" within TTL becomes one for the domain's "start begin"
// (true); any other note (expired, or one this start did not follow) is
// removed (false), and the start is a plain one.
func (m IncomingMarks) Prepare(domain string) (bool, error) {
	ok, p, err := m.take(domain, stageMigrate)
	if err != nil || !ok {
		return false, err
	}
	return true, write(p, stagePrepared)
}

// Take reports whether the domain's "start begin" is that of an incoming
// migration: its note was moved on by Prepare within TTL. It removes the
// note.
func (m IncomingMarks) Take(domain string) (bool, error) {
	ok, _, err := m.take(domain, stagePrepared)
	return ok, err
}

// Drop removes the domain's note, if any (its migration ended before it
// started here).
func (m IncomingMarks) Drop(domain string) error {
	p, err := m.path(domain)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("libvirt: incoming migration note: %w", err)
	}
	return nil
}
