package integration

import (
	"errors"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	bolt "go.etcd.io/bbolt"

	"github.com/vswitch/vswitch/test/topo"
)

// wantPorts checks that list-ports shows exactly these ports with their VLAN.
func (h *hv) wantPorts(want map[string]int) {
	t := h.lab.t
	t.Helper()
	got := map[string]int{}
	for _, p := range h.ports() {
		got[p.Name] = p.VLAN
	}
	if len(got) != len(want) {
		t.Errorf("list-ports shows %v, want %v", got, want)
	}
	for name, vid := range want {
		if g, ok := got[name]; !ok || g != vid {
			t.Errorf("list-ports: port %s VLAN %d (present %v), want VLAN %d", name, g, ok, vid)
		}
	}
}

// kill -9 the daemon and start it again on the same state file: the ports
// come back and traffic resumes.
func TestRestartAfterKill9(t *testing.T) {
	forEachDatapath(t, func(t *testing.T, dp string) {
		_, hvs := newLab(t, dp, 1)
		h := hvs[0]
		vm1, vm2 := h.addVM(1), h.addVM(2)
		h.start()
		h.addPort(vm1.port, "--vlan", "100", "--pcp", "2")
		h.addPort(vm2.port, "--vlan", "100", "--mac", vm2.mac.String())
		vm1.mustPing(vm2)

		if err := h.d.kill(syscall.SIGKILL, 5*time.Second); err == nil {
			t.Fatal("vswitchd exited 0 on SIGKILL?")
		}
		vm1.mustNotPing(vm2, "vswitchd is dead")
		h.start() // same --state, stale socket file left behind
		h.wantPorts(map[string]int{vm1.port: 100, vm2.port: 100})
		for _, p := range h.ports() {
			switch p.Name {
			case vm1.port:
				if p.PCP != 2 {
					t.Errorf("%s PCP %d after restart, want 2", p.Name, p.PCP)
				}
			case vm2.port:
				if len(p.MACs) != 1 || p.MACs[0] != vm2.mac.String() {
					t.Errorf("%s MACs %v after restart, want [%s]", p.Name, p.MACs, vm2.mac)
				}
			}
		}
		h.waitState(vm1.port, "up", 10*time.Second)
		h.waitState(vm2.port, "up", 10*time.Second)
		vm1.mustPing(vm2)
		vm2.mustPing(vm1)
	})
}

// SIGTERM stops the daemon gracefully (exit 0, socket removed); a restart
// restores the ports and traffic resumes at once. The VMs' ARP caches are
// still fresh after the restart, so they send unicast straight away: the
// restarted daemon must deliver it although neither VM has spoken since
// (no registered MACs here, unlike TestRestartAfterKill9).
func TestSIGTERMGraceful(t *testing.T) {
	forEachDatapath(t, func(t *testing.T, dp string) {
		_, hvs := newLab(t, dp, 1)
		h := hvs[0]
		vm1, vm2 := h.addVM(1), h.addVM(2)
		h.start()
		h.addPort(vm1.port, "--vlan", "100")
		h.addPort(vm2.port, "--vlan", "100")
		h.mustCtl("add-port", "vnet5", "--trunk", "10,20-30", "--native-vlan", "10") // absent
		vm1.mustPing(vm2)

		start := time.Now()
		if err := h.d.kill(syscall.SIGTERM, 5*time.Second); err != nil {
			t.Fatalf("vswitchd on SIGTERM: %v (want exit 0 within 5 s)", err)
		}
		t.Logf("vswitchd stopped %v after SIGTERM", time.Since(start).Round(time.Millisecond))
		if _, err := os.Stat(h.sock); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("socket %s still there after a graceful stop (stat: %v)", h.sock, err)
		}
		h.start()
		h.wantPorts(map[string]int{vm1.port: 100, vm2.port: 100, "vnet5": 0})
		for _, p := range h.ports() {
			if p.Name == "vnet5" {
				if p.State != "absent" || p.NativeVLAN != 10 || len(p.Trunk) == 0 {
					t.Errorf("vnet5 after restart: state %s trunk %v native %d, want absent trunk 10,20-30 native 10", p.State, p.Trunk, p.NativeVLAN)
				}
			}
		}
		h.waitState(vm1.port, "up", 10*time.Second)
		h.waitState(vm2.port, "up", 10*time.Second)
		vm1.mustPing(vm2)
	})
}

// A restarted daemon restores the usable ports of a state file that also
// holds unusable port records (one that is not JSON, one that breaks the
// port rules: written by hand, or by a version with looser rules); it logs
// each with what to do, lists each as a down port with its problem, and
// del-port or add-port repairs them.
func TestRestartWithUnusablePortRecords(t *testing.T) {
	needBinaries(t)
	t.Parallel()
	_, hvs := newLab(t, datapaths(t)[0], 1)
	h := hvs[0]
	vm1 := h.addVM(1)
	h.start()
	h.addPort(vm1.port, "--vlan", "100")
	if err := h.d.kill(syscall.SIGTERM, 5*time.Second); err != nil {
		t.Fatalf("vswitchd on SIGTERM: %v", err)
	}
	db, err := bolt.Open(h.state, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("ports"))
		if err := b.Put([]byte("vnet7"), []byte("{not json")); err != nil {
			return err
		}
		return b.Put([]byte("vnet8"), []byte(`{"name":"vnet8","vlan":5000}`))
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}

	// lastRun is the log of the running daemon (the file is appended to
	// across restarts).
	lastRun := func() string {
		b, err := os.ReadFile(h.logf)
		if err != nil {
			t.Fatal(err)
		}
		return string(b[strings.LastIndex(string(b), "=== start"):])
	}
	h.start()
	// The unusable records are listed as down ports with their problem.
	h.wantPorts(map[string]int{vm1.port: 100, "vnet7": 0, "vnet8": 0})
	for _, p := range h.ports() {
		if p.Name != vm1.port && (p.State != "down" || !strings.Contains(p.Problem, "vswctl del-port "+p.Name)) {
			t.Errorf("unusable port %s: state %q, problem %q", p.Name, p.State, p.Problem)
		}
	}
	h.waitState(vm1.port, "up", 10*time.Second)
	log := lastRun()
	for _, want := range []string{"port vnet7 has a corrupt record", "delete it with vswctl del-port vnet7 and add it again",
		"port vnet8 has an invalid record (invalid VLAN 5000: must be 1-4094)"} {
		if !strings.Contains(log, want) {
			t.Errorf("vswitchd log does not say %q:\n%s", want, log)
		}
	}
	if r := h.ctl("stats", "vnet8"); r.code != 1 || !strings.Contains(r.stderr, "vswctl del-port vnet8") {
		t.Errorf("stats vnet8: exit %d, stderr %q", r.code, r.stderr)
	}
	h.mustCtl("del-port", "vnet8")
	h.mustCtl("add-port", "vnet7", "--vlan", "7") // replaces the corrupt record
	h.wantPorts(map[string]int{vm1.port: 100, "vnet7": 7})
	if err := h.d.kill(syscall.SIGTERM, 5*time.Second); err != nil {
		t.Fatalf("vswitchd on SIGTERM: %v", err)
	}
	h.start()
	h.wantPorts(map[string]int{vm1.port: 100, "vnet7": 7})
	if log := lastRun(); strings.Contains(log, "unusable") {
		t.Errorf("after repair the log still reports unusable records:\n%s", log)
	}
}

// Deleting a VM's veth (or tap) makes its port absent; recreating it
// reattaches the port and traffic flows again.
func TestInterfaceRecreate(t *testing.T) {
	forEachDatapath(t, func(t *testing.T, dp string) {
		_, hvs := newLab(t, dp, 1)
		h := hvs[0]
		vm1, vm2 := h.pairOnVLAN100()

		if err := h.ns.DelLink(vm2.port); err != nil {
			t.Fatal(err)
		}
		h.waitState(vm2.port, "absent", 5*time.Second)
		vm1.mustNotPing(vm2, "vm2's veth is gone")
		vm2.plug()
		h.waitState(vm2.port, "up", 10*time.Second)
		vm1.mustPing(vm2)
		vm2.mustPing(vm1)

		// A tap that goes away with its owner (QEMU exiting) and comes back.
		tap, err := topo.TapTransient(h.ns, "vnet9")
		if err != nil {
			t.Fatal(err)
		}
		h.addPort("vnet9", "--vlan", "100")
		tap.Close()
		h.waitState("vnet9", "absent", 5*time.Second)
		tap, err = topo.TapTransient(h.ns, "vnet9")
		if err != nil {
			t.Fatal(err)
		}
		defer tap.Close()
		h.waitState("vnet9", "up", 10*time.Second)
		// The reattached tap carries traffic: ARP for vm1 through it.
		myMAC := topo.MustMAC("52:54:00:00:00:09")
		if err := tapARP(tap, myMAC, "10.0.0.9", vm1.ip); err != nil {
			t.Fatalf("reattached tap: %v", err)
		}
		h.alive()
	})
}

// tapARP asks for tip through the tap and waits for the reply.
func tapARP(tap *os.File, mac []byte, sip, tip string) error {
	s, d := parseIP4(sip), parseIP4(tip)
	var last error
	for try := 0; try < 5; try++ {
		if _, err := tap.Write(buildARPRequest(mac, s, d)); err != nil {
			return err
		}
		_, last = readTap(tap, time.Second, func(f []byte) bool {
			_, ip, ok := parseARPReply(f)
			return ok && ip.Equal(d)
		})
		if last == nil {
			return nil
		}
	}
	return last
}

// 1000 attach/detach cycles of a port's interface leak neither file
// descriptors nor threads, and the port works afterwards.
func TestAttachDetachNoLeak(t *testing.T) {
	forEachDatapath(t, func(t *testing.T, dp string) {
		_, hvs := newLab(t, dp, 1)
		h := hvs[0]
		vm1 := h.addVM(1)
		h.start()
		h.addPort(vm1.port, "--vlan", "100")
		h.mustCtl("add-port", "vnet7", "--vlan", "100")
		nl := h.ns.Netlink()
		cycle := func(wait bool) {
			t.Helper()
			v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "vnet7"}, PeerName: "vpeer7"}
			if err := nl.LinkAdd(v); err != nil {
				t.Fatalf("add veth vnet7: %v", err)
			}
			if wait {
				if err := h.ns.SetUp("vpeer7"); err != nil {
					t.Fatal(err)
				}
				if err := h.ns.SetUp("vnet7"); err != nil {
					t.Fatal(err)
				}
				h.waitState("vnet7", "up", 5*time.Second)
			}
			if err := nl.LinkDel(v); err != nil {
				t.Fatalf("delete veth vnet7: %v", err)
			}
		}
		measure := func() (fds, threads int) {
			t.Helper()
			// Attached state, settled.
			v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "vnet7"}, PeerName: "vpeer7"}
			if err := nl.LinkAdd(v); err != nil {
				t.Fatal(err)
			}
			_ = h.ns.SetUp("vpeer7")
			_ = h.ns.SetUp("vnet7")
			h.waitState("vnet7", "up", 5*time.Second)
			time.Sleep(300 * time.Millisecond)
			var err error
			if fds, err = fdCount(h.d.pid()); err != nil {
				t.Fatal(err)
			}
			if threads, err = threadCount(h.d.pid()); err != nil {
				t.Fatal(err)
			}
			if err := nl.LinkDel(v); err != nil {
				t.Fatal(err)
			}
			h.waitState("vnet7", "absent", 5*time.Second)
			return fds, threads
		}
		for i := 0; i < 20; i++ { // warm up: thread pool, lazy buffers
			cycle(true)
		}
		h.waitState("vnet7", "absent", 5*time.Second)
		fd0, th0 := measure()
		cycles := 1000
		if v, err := strconv.Atoi(os.Getenv("VSWITCH_LEAK_CYCLES")); err == nil && v > 0 {
			cycles = v // for debugging
		}
		start := time.Now()
		for i := 0; i < cycles; i++ {
			// Every cycle waits for the attach in half the runs; the other
			// half deletes at once, racing the daemon's attach.
			cycle(i%2 == 0)
			if time.Since(start) > 180*time.Second { // ~50 s here; the bound only stops a hang
				t.Errorf("only %d of %d cycles in 180 s: attach/detach too slow", i+1, cycles)
				break
			}
		}
		t.Logf("%d attach/detach cycles in %v", cycles, time.Since(start).Round(time.Millisecond))
		h.waitState("vnet7", "absent", 5*time.Second)
		h.alive()
		fd1, th1 := measure()
		t.Logf("daemon fds %d -> %d, threads %d -> %d", fd0, fd1, th0, th1)
		if fd1 > fd0+2 {
			t.Errorf("fd leak: %d open before %d cycles, %d after", fd0, cycles, fd1)
		}
		if th1 > th0+4 {
			t.Errorf("thread leak: %d threads before %d cycles, %d after", th0, cycles, th1)
		}
		// The port still works with a real VM behind it.
		vm7 := h.addVM(7)
		h.waitState(vm7.port, "up", 10*time.Second)
		vm7.mustPing(vm1)
		vm1.mustPing(vm7)
	})
}
