package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Opening a state file so that no content can crash the process: lock the
// file, scan it (boltfile.go), and only then let bbolt map it; run bbolt's
// consistency check; and do all of it with faults turned into panics and
// panics into errors (guard).

// lockTimeout bounds how long opening waits for another process's flock.
const lockTimeout = 1500 * time.Millisecond

// ErrDamaged: the state file cannot be used as it is (errors.Is matches a
// *DamageError).
var ErrDamaged = errors.New("state file is damaged")

// DamageError is a state file the daemon refuses: truncated, a page that is
// not what bbolt wrote, a failed consistency check. Its message is one line
// that says what is wrong and what to do; the file is never changed.
type DamageError struct {
	Path    string
	Problem string
	empty   bool
}

func (e *DamageError) Error() string {
	if e.empty {
		return fmt.Sprintf("state file %s is empty (0 bytes), which vswitchd never leaves behind (it creates the file complete, then renames it into place): the ports it held, if any, are lost; restore it from a backup, or move it away (or start with --state NEWFILE) to run with no ports", e.Path)
	}
	return fmt.Sprintf("state file %s is damaged (%s); vswitchd leaves it as it is: copy its readable ports into a new file with `vswitchd --state %s --check --salvage NEWFILE` and start with --state NEWFILE (or start with --state NEWFILE and add the ports again)",
		e.Path, e.Problem, e.Path)
}

// Is makes errors.Is(err, ErrDamaged) hold.
func (e *DamageError) Is(target error) bool { return target == ErrDamaged }

// guard runs fn with memory faults (SIGBUS, SIGSEGV: bbolt reading a
// mapping the file no longer backs) turned into panics, and any panic
// (those, and bbolt's assertions) into a *DamageError of path. It is the
// last line behind the scan, for damage the scan does not foresee.
func guard(path string, fn func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if r := recover(); r != nil {
			err = &DamageError{Path: path, Problem: fmt.Sprintf("reading it failed: %v", r)}
		}
	}()
	return fn()
}

// opened is a locked state file that passed the checks, open in bbolt.
type opened struct {
	db *bolt.DB
	// fresh: the file was created by this open.
	fresh bool
	// notes are what the checks found and bbolt copes with.
	notes []string
}

// openChecked locks path (exclusively to write, shared to read), scans it,
// opens it in bbolt and runs bbolt's consistency check. A missing file is
// created when write is set; otherwise it is an error. Damage is a
// *DamageError; a file another process holds is ErrLocked.
func openChecked(path string, write bool) (*opened, error) {
	o := &opened{}
	if write {
		if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
			if err := createFresh(path); err != nil {
				return nil, err
			}
			o.fresh = true
		}
	}
	f, err := lockFile(path, write)
	if err != nil {
		return nil, err
	}
	sc, db, err := inspect(path, f, write, false)
	if err != nil {
		return nil, err
	}
	o.notes = sc.notes
	if sc.damaged() {
		f.Close()
		return nil, &DamageError{Path: path, Problem: sc.problemText(), empty: sc.size == 0}
	}
	o.db = db
	return o, nil
}

// inspect checks the locked file f: it scans it (keeping what it reads if
// keep is set) and, when the scan finds
// it sound, opens it in bbolt (read-only unless write) and runs bbolt's
// consistency check, whose problems join the scan's. The returned db owns
// f; when it is nil (an error, or the file is damaged), f is still the
// caller's to close (closing it twice is harmless). err is for what is
// not damage (an I/O error).
func inspect(path string, f *os.File, write, keep bool) (*boltScan, *bolt.DB, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("state file %s: %w", path, err)
	}
	sc := scanBolt(f, fi.Size(), keep)
	if sc.damaged() {
		return sc, nil, nil
	}
	opts := &bolt.Options{Timeout: lockTimeout, ReadOnly: !write,
		// bbolt locks (again: a no-op) and maps the file just checked.
		OpenFile: func(string, int, os.FileMode) (*os.File, error) { return f, nil }}
	var db *bolt.DB
	err = guard(path, func() error {
		var err error
		db, err = bolt.Open(path, 0o600, opts)
		return err
	})
	var de *DamageError
	switch {
	case errors.As(err, &de):
		// A panic: bbolt may have left f open; the caller closes it.
		sc.problem("%s", de.Problem)
		return sc, nil, nil
	case err != nil:
		return nil, nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	if sc.metas[0].err != nil || sc.metas[1].err != nil {
		// bbolt's check asserts that both meta pages are meta pages. The
		// next commit writes the bad one (commits alternate between them),
		// so a writer commits once first; a reader skips the check.
		if !write {
			sc.notes = append(sc.notes, "bbolt's consistency check skipped: it needs both meta pages (vswitchd rewrites the bad one when it starts)")
			return sc, db, nil
		}
		err := guard(path, func() error { return db.Update(func(*bolt.Tx) error { return nil }) })
		if err != nil {
			db.Close()
			return nil, nil, fmt.Errorf("rewrite the meta page of state file %s: %w", path, err)
		}
		sc.notes = append(sc.notes, "the unusable meta page was rewritten")
	}
	problems, notes, err := boltCheck(path, db)
	sc.notes = append(sc.notes, notes...)
	if errors.As(err, &de) {
		problems = append(problems, de.Problem)
	} else if err != nil {
		db.Close()
		return nil, nil, err
	}
	if len(problems) > 0 {
		for _, p := range problems {
			sc.problem("%s", p)
		}
		// This closes f as well; the caller's close is then a no-op.
		_ = guard(path, db.Close)
		return sc, nil, nil
	}
	return sc, db, nil
}

// createFresh creates an empty state file at path complete or not at all:
// bbolt initialises it under a temporary name in the same directory, and a
// rename puts it in place. A crash in between leaves no file at path (at
// worst a hidden .NAME.new-* file), so an empty file at path is never
// vswitchd's doing.
func createFresh(path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create directory for state file %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".new-*")
	if err != nil {
		return fmt.Errorf("create state file %s: %w", path, err)
	}
	tmp := f.Name()
	f.Close()
	ok := false
	defer func() {
		if !ok {
			os.Remove(tmp)
		}
	}()
	db, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: lockTimeout})
	if err != nil {
		return fmt.Errorf("create state file %s: %w", path, err)
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("create state file %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("create state file %s: %w", path, err)
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // the rename survives a power loss
		d.Close()
	}
	return nil
}

// lockFile opens path and takes its flock (exclusive to write, shared to
// read; bbolt's own kind), waiting up to lockTimeout.
func lockFile(path string, write bool) (*os.File, error) {
	flag := os.O_RDONLY
	if write {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	deadline := time.Now().Add(lockTimeout)
	for {
		err := flock(f, write)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, errWouldBlock) {
			f.Close()
			return nil, fmt.Errorf("lock state file %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("state file %s is locked by another vswitchd (stop it, or use a different --state): %w", path, ErrLocked)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// boltCheck runs bbolt's consistency check (tx.Check). Pages neither in use
// nor free only cost space: they are notes. Anything else is a problem.
func boltCheck(path string, db *bolt.DB) (problems, notes []string, err error) {
	err = guard(path, func() error {
		return db.View(func(tx *bolt.Tx) error {
			lost := 0
			for e := range tx.Check() {
				switch msg := e.Error(); {
				case strings.HasSuffix(msg, "unreachable unfreed"):
					lost++
				case len(problems) < maxProblems:
					problems = append(problems, "consistency check: "+msg)
				}
			}
			if lost > 0 {
				notes = append(notes, fmt.Sprintf("consistency check: %d pages are neither in use nor free (space lost, no data)", lost))
			}
			return nil
		})
	})
	return problems, notes, err
}
