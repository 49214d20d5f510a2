package topo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// netnsDir is where iproute2 (and netns.NewNamed) keep named namespaces.
const netnsDir = "/var/run/netns"

// NS is a network namespace: a named one compatible with `ip netns`, or the
// host namespace the process started in (Name == "").
type NS struct {
	// Name as shown by `ip netns list`; empty for the host namespace.
	Name string

	h    netns.NsHandle
	nl   *netlink.Handle
	topo *Topo // nil when created outside a Topo
	once sync.Once
	cerr error
}

// NewNS creates a namespace named exactly name (bind-mounted under
// /var/run/netns so `ip netns exec name ...` works), brings lo up, and turns
// IPv6 off so captures only hold the frames a test sends. The caller owns it
// and must Close it. Inside a Topo use (*Topo).NewNS, which prefixes and
// cleans up.
func NewNS(name string) (*NS, error) {
	if name == "" || strings.ContainsAny(name, "/\x00") {
		return nil, fmt.Errorf("new netns: invalid name %q", name)
	}
	h, err := newNamed(name)
	if err != nil {
		return nil, fmt.Errorf("new netns %s: %w", name, err)
	}
	ns := &NS{Name: name, h: h}
	if ns.nl, err = netlink.NewHandleAt(h); err != nil {
		ns.Close()
		return nil, fmt.Errorf("netlink handle in %s: %w", name, err)
	}
	if err := ns.setup(); err != nil {
		ns.Close()
		return nil, err
	}
	return ns, nil
}

// newNamed wraps netns.NewNamed, which moves the calling thread into the
// new namespace: lock the thread and move it back.
func newNamed(name string) (netns.NsHandle, error) {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return netns.None(), fmt.Errorf("get current netns: %w", err)
	}
	defer orig.Close()
	h, nerr := netns.NewNamed(name)
	if serr := netns.Set(orig); serr != nil {
		// This thread is now in the wrong namespace; leave it locked so the
		// runtime throws it away when the goroutine exits.
		if h.IsOpen() {
			h.Close()
		}
		return netns.None(), fmt.Errorf("restore netns: %w", serr)
	}
	runtime.UnlockOSThread()
	if nerr != nil {
		// NewNamed may have left an empty file behind.
		_ = os.Remove(filepath.Join(netnsDir, name))
		return netns.None(), nerr
	}
	return h, nil
}

func (n *NS) setup() error {
	lo, err := n.nl.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("lo in %s: %w", n.Name, err)
	}
	if err := n.nl.LinkSetUp(lo); err != nil {
		return fmt.Errorf("set lo up in %s: %w", n.Name, err)
	}
	for _, k := range []string{"net.ipv6.conf.all.disable_ipv6", "net.ipv6.conf.default.disable_ipv6"} {
		if err := n.Sysctl(k, "1"); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// HostNS returns the namespace the calling thread is in (normally the host
// one). Closing it only releases the handle.
func HostNS() (*NS, error) {
	h, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("get host netns: %w", err)
	}
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("netlink handle in host netns: %w", err)
	}
	return &NS{h: h, nl: nl}, nil
}

// NewNS creates namespace t.Name(name) and deletes it at Cleanup.
func (t *Topo) NewNS(name string) (*NS, error) {
	ns, err := NewNS(t.Name(name))
	if err != nil {
		return nil, err
	}
	ns.topo = t
	t.Defer("delete netns "+ns.Name, ns.Close)
	return ns, nil
}

// Host returns the host namespace bound to t: links it creates there via
// VethPair are deleted at Cleanup.
func (t *Topo) Host() (*NS, error) {
	ns, err := HostNS()
	if err != nil {
		return nil, err
	}
	ns.topo = t
	t.Defer("release host netns handle", ns.Close)
	return ns, nil
}

// IsHost reports whether n is the host namespace wrapper from HostNS.
func (n *NS) IsHost() bool { return n.Name == "" }

// Handle returns the namespace handle (an open fd on the namespace). It
// stays valid until Close.
func (n *NS) Handle() netns.NsHandle { return n.h }

// Netlink returns a netlink handle whose socket lives in the namespace.
func (n *NS) Netlink() *netlink.Handle { return n.nl }

// String returns the name, or "host".
func (n *NS) String() string {
	if n.IsHost() {
		return "host"
	}
	return n.Name
}

// Close releases the handles and, for a named namespace, unmounts and removes
// it. The kernel then destroys the namespace and every device in it once
// nothing else (process, socket, fd) holds it. Close is idempotent.
func (n *NS) Close() error {
	n.once.Do(func() {
		if n.nl != nil {
			n.nl.Close()
		}
		if n.h.IsOpen() {
			n.h.Close()
		}
		if n.Name != "" {
			if err := netns.DeleteNamed(n.Name); err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.EINVAL) {
				n.cerr = fmt.Errorf("delete netns %s: %w", n.Name, err)
			}
			_ = os.Remove(filepath.Join(netnsDir, n.Name))
		}
	})
	return n.cerr
}

// Do runs fn on a thread switched into the namespace, then switches back.
// fn must not start goroutines that expect to be in the namespace: only the
// calling thread is moved. Sockets opened inside fn stay in the namespace
// after Do returns, which is the usual way to use it.
func (n *NS) Do(fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("get current netns: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(n.h); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter netns %s: %w", n, err)
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		// Leave the thread locked: the runtime kills it when we return.
		return errors.Join(ferr, fmt.Errorf("restore netns after %s: %w", n, err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// Sysctl writes value to the sysctl key ("net.ipv4.ip_forward") as seen
// inside the namespace. A missing key returns an error wrapping
// os.ErrNotExist (e.g. bridge-nf-call-* without br_netfilter).
func (n *NS) Sysctl(key, value string) error {
	p := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	return n.Do(func() error {
		if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
			return fmt.Errorf("sysctl %s=%s in %s: %w", key, value, n, err)
		}
		return nil
	})
}

// ReadSysctl reads the sysctl key inside the namespace.
func (n *NS) ReadSysctl(key string) (string, error) {
	p := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	var out string
	err := n.Do(func() error {
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("sysctl %s in %s: %w", key, n, err)
		}
		out = strings.TrimSpace(string(b))
		return nil
	})
	return out, err
}

// Command returns an unstarted command that runs name inside the namespace
// (via `ip netns exec`, which execs directly so the pid is the command's).
func (n *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	if n.IsHost() {
		return exec.CommandContext(ctx, name, args...)
	}
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Run runs a command inside the namespace and returns its combined output.
// A non-zero exit is an error that includes the output.
func (n *NS) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	out, err := n.Command(ctx, name, args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("run %s %s in %s: %w: %s", name, strings.Join(args, " "), n, err, bytes.TrimSpace(out))
	}
	return out, nil
}

// Proc is a long-running process started in a namespace with Start.
type Proc struct {
	Cmd  *exec.Cmd
	out  SyncBuffer
	done chan struct{}
	err  error
	stop sync.Once
}

// Start starts a long-running command (e.g. vswitchd) inside the namespace.
// Stdout and stderr are collected (Output). When n belongs to a Topo, the
// process is stopped at Cleanup and, if the test failed, its output logged.
// The process gets SIGKILL if the test process dies (Pdeathsig).
func (n *NS) Start(name string, args ...string) (*Proc, error) {
	p := &Proc{done: make(chan struct{})}
	p.Cmd = n.Command(context.Background(), name, args...)
	p.Cmd.Stdout = &p.out
	p.Cmd.Stderr = &p.out
	p.Cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.Cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s in %s: %w", name, n, err)
	}
	go func() {
		p.err = p.Cmd.Wait()
		close(p.done)
	}()
	if t := n.topo; t != nil {
		t.Defer("stop "+name, func() error {
			_ = p.Stop(5 * time.Second)
			if t.Failed() {
				t.Logf("output of %s in %s:\n%s", name, n, p.Output())
			}
			return nil
		})
	}
	return p, nil
}

// Pid returns the process id.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Output returns everything the process wrote so far to stdout and stderr.
func (p *Proc) Output() string { return p.out.String() }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err returns the exit error once Done is closed (nil for exit status 0).
func (p *Proc) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// Signal sends sig to the process group.
func (p *Proc) Signal(sig syscall.Signal) error {
	return syscall.Kill(-p.Cmd.Process.Pid, sig)
}

// Stop sends SIGTERM to the process group, waits up to grace, then SIGKILLs.
// It returns the exit error (a *exec.ExitError for a signal is expected).
func (p *Proc) Stop(grace time.Duration) error {
	p.stop.Do(func() {
		select {
		case <-p.done:
			return
		default:
		}
		_ = p.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
			_ = p.Signal(syscall.SIGKILL)
			<-p.done
		}
	})
	<-p.done
	return p.err
}

// SyncBuffer is a bytes.Buffer that a process (or logger) may write while
// a test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns a copy of what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Bytes returns a copy of what was written so far.
func (s *SyncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.b.Bytes()...)
}

// PacketSockets lists the inodes of the packet sockets open in the
// namespace (/proc/net/packet as seen from inside it).
func (n *NS) PacketSockets() ([]string, error) {
	var b []byte
	if err := n.Do(func() error {
		var err error
		b, err = os.ReadFile("/proc/thread-self/net/packet")
		return err
	}); err != nil {
		return nil, fmt.Errorf("list packet sockets in %s: %w", n.Name, err)
	}
	var inodes []string
	for i, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if f := strings.Fields(line); i > 0 && len(f) > 0 {
			inodes = append(inodes, f[len(f)-1])
		}
	}
	return inodes, nil
}
