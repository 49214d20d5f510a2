package libvirt

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/vswitch/vswitch/internal/uuid"
)

// IncomingTTL is how long a domain noted as migrating in stays so: libvirt
// runs "start begin" within seconds of "migrate begin"; a note older than
// this is of a migration that never started here.
const IncomingTTL = 10 * time.Minute

// IncomingMarks remembers the domains migrating to this host from their
// "migrate begin" hook call to their "start begin" (separate processes):
// one empty file per domain, named by its UUID, in Dir. Notes older than
// TTL (IncomingTTL when zero) do not count and are removed by the next
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

// Mark notes that the domain (its UUID) is migrating in. It creates Dir
// (0700) when needed and removes the notes that expired.
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
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		return fmt.Errorf("libvirt: note the incoming migration: %w", err)
	}
	now := time.Now()
	return os.Chtimes(p, now, now) // a note rewritten is fresh again
}

// Take reports whether the domain was noted as migrating in within TTL,
// and removes the note.
func (m IncomingMarks) Take(domain string) (bool, error) {
	p, err := m.path(domain)
	if err != nil {
		return false, err
	}
	info, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("libvirt: incoming migration note: %w", err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("libvirt: incoming migration note: %w", err)
	}
	return time.Since(info.ModTime()) <= m.ttl(), nil
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
