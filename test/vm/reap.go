package vm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/vswitch/vswitch/test/topo"
)

// ownerDir holds one file per live private libvirtd: "PID DIR", the test
// process and the libvirtd's directory. A test killed before its cleanup
// (SIGKILL, go test's timeout) leaves QEMU processes that outlive it (the
// anchor and libvirtd die with it, Pdeathsig, but libvirtd daemonizes
// QEMU): ReapStale kills them. topo.ReapStale removes the namespaces.
const ownerDir = "/run/vswitch-vm"

func recordOwner(tp *topo.Topo, dir string) error {
	if err := os.MkdirAll(ownerDir, 0o755); err != nil {
		return fmt.Errorf("vm owner dir: %w", err)
	}
	p := filepath.Join(ownerDir, filepath.Base(dir))
	if err := os.WriteFile(p, []byte(fmt.Sprintf("%d %s\n", os.Getpid(), dir)), 0o644); err != nil {
		return fmt.Errorf("vm owner record: %w", err)
	}
	tp.Defer("forget "+p, func() error {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	})
	return nil
}

// ReapStale kills the QEMU, libvirtd and anchor processes of private
// libvirtds whose test process died, and removes their directories.
// StartLibvirtd calls it.
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
		rec := filepath.Join(ownerDir, e.Name())
		b, err := os.ReadFile(rec)
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) != 2 || !strings.HasPrefix(filepath.Base(f[1]), "vsvm-") {
			errs = append(errs, fmt.Errorf("%s: not a record of test/vm: %q", rec, b))
			continue
		}
		pid, err := strconv.Atoi(f[0])
		if err == nil && pidAlive(pid) {
			continue
		}
		dir := f[1]
		killPidfiles(filepath.Join(dir, "run", "qemu", "*.pid"), "qemu")
		killPidfiles(filepath.Join(dir, "libvirtd.pid"), "libvirtd")
		killPidfiles(filepath.Join(dir, "anchor.pid"), "sleep")
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("reap %s: %w", dir, err))
			continue
		}
		_ = os.Remove(rec)
	}
	return errors.Join(errs...)
}

func pidAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
