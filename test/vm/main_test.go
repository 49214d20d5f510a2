package vm_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/test/topo"
	"github.com/vswitch/vswitch/test/vm"
)

// Paths of the binaries TestMain builds; empty when it did not.
var (
	vswitchdBin, vswctlBin string
	buildErr               error
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		return m.Run() // every test skips
	}
	dir, err := os.MkdirTemp("", "vsvm-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "vm: temp dir for binaries: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	vswitchdBin, vswctlBin, buildErr = topo.BuildDaemons(dir)
	return m.Run()
}

// lab is the VM tests' topology: a switch namespace whose bridge br0 (STP
// off, hairpin on port p0: the reflective relay) connects to a hypervisor
// namespace through the veth uplink <-> p0; vswitchd on the uplink; a
// private libvirtd in the hypervisor namespace with README's hook (unless
// labOptions say otherwise).
type lab struct {
	t    *testing.T
	tp   *topo.Topo
	img  vm.Image
	sw   *topo.NS
	hv   *topo.NS
	dir  string // vswitchd's state file and socket
	sock string // vswitchd's API socket
	api  *api.Client
	// daemon is the vswitchd process (its log is its output).
	daemon *topo.Proc
	lv     *vm.Libvirtd
	// wire captures every frame on p0, the bridge's side of the uplink.
	wire *topo.Capture
}

func newLab(t *testing.T) *lab {
	t.Helper()
	return newLabWith(t, labOptions{})
}

// labOptions vary the lab: a libvirtd without the hook, and vswitchd left
// for the test to start (startDaemon) with flags of its own.
type labOptions struct {
	noHook     bool
	daemonLate bool
}

func newLabWith(t *testing.T, o labOptions) *lab {
	t.Helper()
	img := vm.Require(t)
	if buildErr != nil {
		t.Fatalf("vm: %v", buildErr)
	}
	tp := topo.New(t)
	l := &lab{t: t, tp: tp, img: img}
	var err error
	if l.sw, err = tp.NewNS("sw"); err != nil {
		t.Fatal(err)
	}
	if l.hv, err = tp.NewNS("hv"); err != nil {
		t.Fatal(err)
	}
	if err := topo.VethPair(l.hv, "uplink", l.sw, "p0"); err != nil {
		t.Fatal(err)
	}
	if err := topo.Bridge(l.sw, "br0", topo.Port{Name: "p0", Hairpin: true}); err != nil {
		t.Fatal(err)
	}
	if l.wire, err = l.sw.Capture("p0"); err != nil {
		t.Fatal(err)
	}
	if l.dir, err = os.MkdirTemp("", "vsvm-d-"); err != nil {
		t.Fatal(err)
	}
	tp.Defer("remove "+l.dir, func() error { return os.RemoveAll(l.dir) })
	l.sock = filepath.Join(l.dir, "vswitchd.sock")
	l.api = api.NewClient(l.sock)
	tp.Defer("close API client", func() error { l.api.Close(); return nil })
	if !o.daemonLate {
		l.startDaemon()
	}
	hook := vm.HookScript(vswctlBin, l.sock)
	if o.noHook {
		hook = ""
	}
	if l.lv, err = vm.StartLibvirtd(tp, l.hv, hook); err != nil {
		t.Fatal(err)
	}
	return l
}

// startDaemon starts vswitchd on the uplink with extra flags and waits
// until its API answers.
func (l *lab) startDaemon(extra ...string) {
	t := l.t
	t.Helper()
	args := append([]string{"--uplink", "uplink", "--datapath", "afpacket",
		"--state", filepath.Join(l.dir, "state.db"), "--socket", l.sock, "--log-level", "debug", "--uplink-queues", "1"}, extra...)
	d, err := l.hv.Start(vswitchdBin, args...)
	if err != nil {
		t.Fatal(err)
	}
	l.daemon = d
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := l.api.Status(ctx)
		cancel()
		if err == nil {
			return
		}
		select {
		case <-d.Done():
			t.Fatalf("vswitchd exited (%v):\n%s", d.Err(), d.Output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("vswitchd API not answering after 15 s: %v\n%s", err, d.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// guest defines (not starts) guest n: MAC 52:54:00:00:01:0n, IP
// 10.0.0.n/24, its tap PREFIXvn, the <vsw:port> attributes port.
func (l *lab) guest(n int, port string) *vm.Domain {
	l.t.Helper()
	d, err := l.lv.Define(vm.DomainSpec{
		Name:  l.tp.Name(fmt.Sprintf("vm%d", n)),
		Image: l.img,
		IP:    fmt.Sprintf("10.0.0.%d/24", n),
		NICs:  []vm.NIC{{MAC: fmt.Sprintf("52:54:00:00:01:%02x", n), Tap: l.tp.Ifname(fmt.Sprintf("v%d", n)), Port: port}},
	})
	if err != nil {
		l.t.Fatal(err)
	}
	return d
}

// ports returns vswitchd's ports by name.
func (l *lab) ports() map[string]api.Port {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ps, err := l.api.ListPorts(ctx)
	if err != nil {
		l.t.Fatalf("list ports: %v", err)
	}
	m := map[string]api.Port{}
	for _, p := range ps {
		m[p.Name] = p
	}
	return m
}
