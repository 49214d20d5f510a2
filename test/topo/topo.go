package topo

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// MaxIfnameLen is the longest interface name Linux accepts (IFNAMSIZ-1).
const MaxIfnameLen = 15

// Topo owns everything one test (or one benchmark run) creates: network
// namespaces, links in the host namespace, open files and processes. Every
// name it hands out starts with Prefix, and Cleanup removes it all again.
//
// A Topo is safe for concurrent use.
type Topo struct {
	// Prefix is "vs" followed by four random hex digits, e.g. "vs3fa2".
	Prefix string

	tb       testing.TB
	mu       sync.Mutex
	cleanups []cleanupFn
	closed   bool
}

type cleanupFn struct {
	what string
	fn   func() error
}

// New returns a Topo for a test. It skips the test when not running as root
// (network namespaces need CAP_SYS_ADMIN), and registers Cleanup with
// tb.Cleanup so everything is removed even when the test fails or panics.
func New(tb testing.TB) *Topo {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("test/topo: needs root to create network namespaces")
	}
	if err := ReapStale(); err != nil {
		tb.Logf("topo: reaping leftovers of dead runs: %v", err)
	}
	t, err := NewTopo()
	if err != nil {
		tb.Fatalf("topo: %v", err)
	}
	t.tb = tb
	tb.Cleanup(func() {
		if err := t.Cleanup(); err != nil {
			tb.Errorf("topo cleanup: %v", err)
		}
	})
	return t
}

// NewTopo returns a Topo for code that is not a test (the benchmark harness,
// demos). The caller must call Cleanup, typically with defer and on signals.
func NewTopo() (*Topo, error) {
	for i := 0; i < 16; i++ {
		var b [2]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("random prefix: %w", err)
		}
		prefix := "vs" + hex.EncodeToString(b[:])
		// Avoid a prefix some other live run already uses.
		matches, _ := filepath.Glob(filepath.Join(netnsDir, prefix+"-*"))
		if len(matches) != 0 {
			continue
		}
		if _, err := os.Stat(filepath.Join(ownerDir, prefix)); err == nil {
			continue
		}
		t := &Topo{Prefix: prefix}
		if err := t.recordOwner(); err != nil {
			return nil, err
		}
		return t, nil
	}
	return nil, errors.New("no free name prefix after 16 tries")
}

// Name returns Prefix + "-" + suffix, the name used for namespaces.
func (t *Topo) Name(suffix string) string { return t.Prefix + "-" + suffix }

// Ifname returns Prefix + suffix for an interface created in a shared
// namespace (the host). It panics if the result is longer than 15 bytes,
// because the kernel would refuse it anyway and a test should fail loudly.
func (t *Topo) Ifname(suffix string) string {
	n := t.Prefix + suffix
	if len(n) > MaxIfnameLen {
		panic(fmt.Sprintf("topo: interface name %q longer than %d bytes", n, MaxIfnameLen))
	}
	return n
}

// Defer registers fn to run at Cleanup. Cleanups run last-registered first,
// so processes and files go before the namespaces they live in.
func (t *Topo) Defer(what string, fn func() error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		// Cleanup already ran: undo at once rather than leak.
		_ = fn()
		return
	}
	t.cleanups = append(t.cleanups, cleanupFn{what: what, fn: fn})
}

// Logf logs through the test when there is one, else to stderr.
func (t *Topo) Logf(format string, args ...any) {
	if t.tb != nil {
		t.tb.Helper()
		t.tb.Logf(format, args...)
		return
	}
	fmt.Fprintf(os.Stderr, "topo: "+format+"\n", args...)
}

// Failed reports whether the owning test failed (false without a test).
func (t *Topo) Failed() bool { return t.tb != nil && t.tb.Failed() }

// Cleanup kills processes, closes files, deletes host links and namespaces,
// in reverse order of creation. It keeps going after an error and returns
// all errors joined. Calling it twice is harmless.
func (t *Topo) Cleanup() error {
	t.mu.Lock()
	cs := t.cleanups
	t.cleanups = nil
	t.closed = true
	t.mu.Unlock()
	var errs []error
	for i := len(cs) - 1; i >= 0; i-- {
		if err := cs[i].fn(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", cs[i].what, err))
		}
	}
	return errors.Join(errs...)
}

// VethNS is the smallest lab: a namespace (removed at Cleanup; the test
// skips without root) holding a veth pair a <-> b, both up.
func VethNS(tb testing.TB, name, a, b string) *NS {
	tb.Helper()
	ns, err := New(tb).NewNS(name)
	if err != nil {
		tb.Fatal(err)
	}
	if err := VethPair(ns, a, ns, b); err != nil {
		tb.Fatal(err)
	}
	return ns
}
