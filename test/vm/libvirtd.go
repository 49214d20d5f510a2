package vm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vswitch/vswitch/test/topo"
)

// libvirtDirs are the system instance's directories that a private
// libvirtd gets its own copy of (bind mounts in its mount namespace):
// configuration and hooks, sockets and runtime state, domain state,
// capability cache, logs. Everything else it shares with the host.
var libvirtDirs = []struct{ sys, sub string }{
	{"/etc/libvirt", "etc"},
	{"/run/libvirt", "run"},
	{"/var/lib/libvirt", "lib"},
	{"/var/cache/libvirt", "cache"},
	{"/var/log/libvirt", "log"},
}

// qemuConf is the private instance's /etc/libvirt/qemu.conf. QEMU runs as
// root with no security driver, cgroups or private /dev (nothing of the
// host's policy applies to a test's guests), and writes its own logs
// (stdio_handler "file": no virtlogd to start and stop).
const qemuConf = `user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
namespaces = []
cgroup_controllers = []
stdio_handler = "file"
`

// libvirtdConf is the private instance's libvirtd.conf: warnings and
// errors on stderr, which the test shows when it fails.
const libvirtdConf = `log_outputs = "3:stderr"
`

// Libvirtd is a private libvirtd system instance inside a network
// namespace: root's qemu:///system driver, with its own configuration,
// hooks directory, sockets and state under Dir. The taps it creates for
// <interface type='ethernet'> appear in that namespace, and its hook runs
// there. Clients reach it with URI.
//
// How: libvirtd has no option for its directories when it runs as root, so
// an anchor process (`sleep infinity`) is started in the namespace through
// `ip netns exec`, which gives it a mount namespace of its own, and
// bind-mounts DIR/etc over /etc/libvirt, DIR/run over /run/libvirt and so
// on. libvirtd runs in that mount namespace (nsenter), so a restart finds
// the same directories and the running QEMU processes.
type Libvirtd struct {
	// Dir holds the private directories (etc, run, lib, cache, log).
	Dir string
	// URI is the connection URI for virsh -c.
	URI string

	tp     *topo.Topo
	ns     *topo.NS
	host   *topo.NS // not owned by tp: libvirtd's cleanup is ours
	anchor *topo.Proc

	mu      sync.Mutex
	proc    *topo.Proc
	outputs []string // output of earlier libvirtd processes (restarts)
}

// ErrMissing marks a missing program or image (see Require).
var ErrMissing = errors.New("not installed")

// StartLibvirtd starts a private libvirtd in ns with hook as its qemu hook
// (HookPath; "" for none). Everything goes at tp's Cleanup:
// the domains (Define registers their removal), libvirtd, the anchor, Dir.
func StartLibvirtd(tp *topo.Topo, ns *topo.NS, hook string) (*Libvirtd, error) {
	return StartLibvirtdWith(tp, ns, LibvirtdOptions{Hook: hook})
}

// LibvirtdOptions configure a private libvirtd.
type LibvirtdOptions struct {
	// Hook is its qemu hook, installed where make install and the
	// package put it (HookPath); "" for none.
	Hook string
	// HostUUID is the host UUID it reports (libvirtd.conf host_uuid);
	// "": the machine's. libvirt refuses to migrate a domain between two
	// daemons of one host UUID ("the same host"): two instances on one
	// machine that migrate between them need their own.
	HostUUID string
	// QEMUConf is appended to its qemu.conf (e.g. migration_address).
	QEMUConf string
}

// HookPath is where a private libvirtd's hook is, under Dir: its
// /etc/libvirt/hooks/qemu.d/vswitch, as make install and the package
// install it (libvirt runs it after /etc/libvirt/hooks/qemu, which the
// tests leave absent).
const HookPath = "etc/hooks/qemu.d/vswitch"

// StartLibvirtdWith is StartLibvirtd with options.
func StartLibvirtdWith(tp *topo.Topo, ns *topo.NS, o LibvirtdOptions) (*Libvirtd, error) {
	hook := o.Hook
	if err := ReapStale(); err != nil {
		tp.Logf("vm: reaping leftovers of dead runs: %v", err)
	}
	dir, err := os.MkdirTemp("", "vsvm-"+tp.Prefix+"-")
	if err != nil {
		return nil, fmt.Errorf("libvirtd dir: %w", err)
	}
	tp.Defer("remove "+dir, func() error { return os.RemoveAll(dir) })
	var mounts []string
	for _, d := range libvirtDirs {
		priv := filepath.Join(dir, d.sub)
		if err := os.MkdirAll(priv, 0o755); err != nil {
			return nil, fmt.Errorf("libvirtd dir: %w", err)
		}
		// The mount point must exist on the host; an empty directory is
		// what the libvirt packages would create there anyway.
		if err := os.MkdirAll(d.sys, 0o755); err != nil {
			return nil, fmt.Errorf("libvirtd mount point: %w", err)
		}
		mounts = append(mounts, fmt.Sprintf("mount --bind %s %s", shellQuote(priv), d.sys))
	}
	conf := libvirtdConf
	if o.HostUUID != "" {
		conf += fmt.Sprintf("host_uuid = %q\n", o.HostUUID)
	}
	files := map[string]string{"etc/qemu.conf": qemuConf + o.QEMUConf, "etc/libvirtd.conf": conf}
	if hook != "" {
		files[HookPath] = hook
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, fmt.Errorf("libvirtd config: %w", err)
		}
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			return nil, fmt.Errorf("libvirtd config: %w", err)
		}
	}
	if err := recordOwner(tp, dir); err != nil {
		return nil, err
	}
	anchor, err := ns.Start("sh", "-c", "set -e; "+strings.Join(mounts, "; ")+"; echo anchored; exec sleep infinity")
	if err != nil {
		return nil, fmt.Errorf("libvirtd anchor: %w", err)
	}
	if err := waitOutput(anchor, "anchored", 10*time.Second); err != nil {
		return nil, fmt.Errorf("libvirtd anchor: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "anchor.pid"), []byte(fmt.Sprint(anchor.Pid())), 0o644); err != nil {
		return nil, fmt.Errorf("libvirtd anchor: %w", err)
	}
	host, err := topo.HostNS()
	if err != nil {
		return nil, err
	}
	l := &Libvirtd{
		Dir: dir, URI: "qemu:///system?socket=" + filepath.Join(dir, "run", "libvirt-sock"),
		tp: tp, ns: ns, host: host, anchor: anchor,
	}
	tp.Defer("stop libvirtd", func() error {
		err := l.Stop()
		if tp.Failed() {
			tp.Logf("libvirtd output:\n%s", l.Output())
		}
		l.killQEMUs()
		host.Close()
		return err
	})
	if err := l.Start(); err != nil {
		return nil, err
	}
	return l, nil
}

// Start starts libvirtd (after Stop: a restart; running guests stay, and
// libvirt reconnects to them and runs the hook's "reconnect begin") and
// waits until it answers.
func (l *Libvirtd) Start() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.proc != nil {
		select {
		case <-l.proc.Done():
			l.outputs = append(l.outputs, l.proc.Output())
		default:
			return errors.New("libvirtd already running")
		}
	}
	p, err := l.host.Start("nsenter", "-t", fmt.Sprint(l.anchor.Pid()), "-m", "-n", "--",
		"libvirtd", "-f", "/etc/libvirt/libvirtd.conf", "-p", filepath.Join(l.Dir, "libvirtd.pid"))
	if err != nil {
		return fmt.Errorf("start libvirtd: %w", err)
	}
	l.proc = p
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := l.virsh(ctx, "uri")
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-p.Done():
			return fmt.Errorf("libvirtd exited (%v):\n%s", p.Err(), p.Output())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("libvirtd not answering on %s after 30 s: %v\n%s", l.URI, err, p.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop stops libvirtd (SIGTERM). Running guests keep running.
func (l *Libvirtd) Stop() error {
	l.mu.Lock()
	p := l.proc
	l.mu.Unlock()
	if p == nil {
		return nil
	}
	err := p.Stop(10 * time.Second)
	var ee interface{ ExitCode() int }
	if errors.As(err, &ee) && ee.ExitCode() == -1 {
		err = nil // killed by our SIGTERM
	}
	return err
}

// Restart stops libvirtd and starts it again.
func (l *Libvirtd) Restart() error {
	if err := l.Stop(); err != nil {
		return fmt.Errorf("stop libvirtd: %w", err)
	}
	return l.Start()
}

// explain adds to err, a failed virsh command, how libvirtd ended if it
// is no longer running (nil stays nil).
func (l *Libvirtd) explain(err error) error {
	if err == nil {
		return nil
	}
	l.mu.Lock()
	p := l.proc
	l.mu.Unlock()
	if p == nil {
		return err
	}
	select {
	case <-p.Done():
		return fmt.Errorf("%w (libvirtd had exited: %v; its last words:\n%s)", err, p.Err(), tail(p.Output(), 10))
	default:
		return err
	}
}

// Output returns what every libvirtd process of l wrote (warnings, errors).
func (l *Libvirtd) Output() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := strings.Join(l.outputs, "=== restart\n")
	if l.proc != nil {
		out += l.proc.Output()
	}
	return out
}

// Virsh runs `virsh -c URI ARGS` and returns its trimmed stdout+stderr.
func (l *Libvirtd) Virsh(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return l.virsh(ctx, args...)
}

func (l *Libvirtd) virsh(ctx context.Context, args ...string) (string, error) {
	out, err := run(ctx, "", "virsh", append([]string{"-q", "-c", l.URI}, args...)...)
	if err != nil {
		return string(out), fmt.Errorf("virsh %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// killQEMUs kills the QEMU processes libvirtd left (a domain whose
// destroy failed), found by the pid files in the private run directory.
func (l *Libvirtd) killQEMUs() {
	killPidfiles(filepath.Join(l.Dir, "run", "qemu", "*.pid"), "qemu")
}

// killPidfiles SIGKILLs the process of every pid file matching glob whose
// command line contains want (a reused pid is left alone).
func killPidfiles(glob, want string) {
	files, _ := filepath.Glob(glob)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var pid int
		if _, err := fmt.Sscan(string(b), &pid); err != nil || pid <= 1 {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !strings.Contains(string(cmdline), want) {
			continue
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// waitOutput waits until p has written want.
func waitOutput(p *topo.Proc, want string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.Output(), want) {
		select {
		case <-p.Done():
			return fmt.Errorf("exited (%v): %s", p.Err(), p.Output())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no %q after %v: %s", want, timeout, p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// shellQuote quotes s for sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
