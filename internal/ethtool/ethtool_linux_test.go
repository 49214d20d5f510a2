//go:build linux

package ethtool

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/vswitch/vswitch/test/topo"
)

// Disable switches off what is on (and only that), reports it, and
// Restore switches it back on; the state is read back each time, and
// `ethtool -k` (a separate implementation) agrees.
func TestDisableAndRestore(t *testing.T) {
	ns := vethWithGRO(t)
	cliSays := func(want string) {
		t.Helper()
		out, err := ns.Run(context.Background(), "ethtool", "-k", "a0")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(strings.Split(string(out), "\n"), "generic-receive-offload: "+want) {
			t.Errorf("ethtool -k a0 does not say generic-receive-offload: %s:\n%s", want, out)
		}
	}
	err := ns.Do(func() error {
		if on, err := Enabled("a0", "rx-gro"); err != nil || !on {
			t.Fatalf("rx-gro on after ethtool -K gro on: %v %v", on, err)
		}
		r, err := Disable("a0", "rx-gro", "rx-lro", "no-such-feature")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(r.Names(), []string{"rx-gro"}) {
			t.Errorf("switched off %v, want [rx-gro] (rx-lro was off)", r.Names())
		}
		if on, _ := Enabled("a0", "rx-gro"); on {
			t.Error("rx-gro still on after Disable")
		}
		cliSays("off")
		again, err := Disable("a0", "rx-gro")
		if again != nil || err != nil {
			t.Errorf("Disable of what is off: %v, %v; want nil, nil", again, err)
		}
		if err := r.Restore(); err != nil {
			t.Fatal(err)
		}
		if on, _ := Enabled("a0", "rx-gro"); !on {
			t.Error("rx-gro off after Restore")
		}
		cliSays("on")
		if _, err := Disable("nope0", "rx-gro"); err == nil {
			t.Error("Disable on a missing interface gave no error")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Restore leaves alone an interface that replaced the one Disable changed
// (same name, new ifindex): it never switches on what that one never had.
func TestRestoreSkipsReplacedInterface(t *testing.T) {
	ns := vethWithGRO(t)
	err := ns.Do(func() error {
		r, err := Disable("a0", "rx-gro")
		if err != nil || r == nil {
			t.Fatalf("Disable: %v, %v", r, err)
		}
		if err := ns.DelLink("a0"); err != nil {
			return err
		}
		if err := topo.VethPair(ns, "a0", ns, "b0"); err != nil {
			return err
		}
		if on, _ := Enabled("a0", "rx-gro"); on {
			t.Skip("a new veth has GRO on by default here; nothing to show")
		}
		if err := r.Restore(); err != nil {
			t.Fatal(err)
		}
		if on, _ := Enabled("a0", "rx-gro"); on {
			t.Error("Restore switched GRO on on the replacement interface")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// vethWithGRO makes a namespace with veth pair a0/b0 and GRO on on a0
// (skipping without root or ethtool).
func vethWithGRO(t *testing.T) *topo.NS {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces")
	}
	if _, err := exec.LookPath("ethtool"); err != nil {
		t.Skip("ethtool not installed")
	}
	ns := topo.VethNS(t, "eth", "a0", "b0")
	if _, err := ns.Run(context.Background(), "ethtool", "-K", "a0", "gro", "on"); err != nil {
		t.Fatal(err)
	}
	return ns
}

// RXQueues reads a veth's RX queues in the calling thread's namespace
// (a 1-queue veth and a 3-queue one, as `ethtool -l` shows them), and a
// driver without channels (a bridge) is errors.ErrUnsupported.
func TestRXQueues(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces")
	}
	ns := topo.VethNS(t, "rxq", "a0", "b0")
	if _, err := ns.Run(context.Background(), "ip", "link", "add", "m0", "numrxqueues", "3", "numtxqueues", "3", "type", "veth", "peer", "name", "m1"); err != nil {
		t.Fatal(err)
	}
	if _, err := ns.Run(context.Background(), "ip", "link", "add", "br0", "type", "bridge"); err != nil {
		t.Fatal(err)
	}
	err := ns.Do(func() error {
		for _, c := range []struct {
			name string
			want int
		}{{"a0", 1}, {"m0", 3}} {
			if n, err := RXQueues(c.name); n != c.want || err != nil {
				t.Errorf("RXQueues(%s) = %d, %v; want %d", c.name, n, err, c.want)
			}
		}
		if n, err := RXQueues("br0"); !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("RXQueues(bridge) = %d, %v; want errors.ErrUnsupported", n, err)
		}
		if _, err := RXQueues("nope0"); err == nil || errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("RXQueues of a missing interface: %v, want another error", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
