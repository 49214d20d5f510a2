package topo

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// ownerDir holds one file per live Topo prefix containing the owner's pid,
// so a later run can remove what a killed run (SIGKILL, test timeout) left.
const ownerDir = "/run/vswitch-topo"

func (t *Topo) recordOwner() error {
	if err := os.MkdirAll(ownerDir, 0o755); err != nil {
		return fmt.Errorf("owner dir: %w", err)
	}
	p := filepath.Join(ownerDir, t.Prefix)
	if err := os.WriteFile(p, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return fmt.Errorf("record owner: %w", err)
	}
	// Runs last: forget the prefix once everything is gone.
	t.cleanups = append(t.cleanups, cleanupFn{what: "owner record", fn: func() error {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}})
	return nil
}

func pidAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// ReapStale removes the namespaces and host links of Topos whose owning
// process has died without cleaning up. Prefixes of live processes are left
// alone, so concurrent test runs are safe. New calls it.
func ReapStale() error {
	ents, err := os.ReadDir(ownerDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", ownerDir, err)
	}
	var errs []error
	for _, e := range ents {
		prefix := e.Name()
		b, err := os.ReadFile(filepath.Join(ownerDir, prefix))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err == nil && pidAlive(pid) {
			continue
		}
		if err := reapPrefix(prefix); err != nil {
			errs = append(errs, err)
			continue
		}
		_ = os.Remove(filepath.Join(ownerDir, prefix))
	}
	return errors.Join(errs...)
}

func reapPrefix(prefix string) error {
	var errs []error
	nss, _ := filepath.Glob(filepath.Join(netnsDir, prefix+"-*"))
	for _, p := range nss {
		if err := netns.DeleteNamed(filepath.Base(p)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("reap netns %s: %w", p, err))
		}
		_ = os.Remove(p)
	}
	links, err := netlink.LinkList()
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("reap: list links: %w", err))...)
	}
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, prefix) {
			// Deleting one veth end takes the other with it: ENODEV is fine.
			if err := netlink.LinkDel(l); err != nil && !errors.Is(err, syscall.ENODEV) {
				errs = append(errs, fmt.Errorf("reap link %s: %w", l.Attrs().Name, err))
			}
		}
	}
	return errors.Join(errs...)
}
