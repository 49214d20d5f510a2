package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/test/topo"
)

func main() {
	bin := flag.String("bin", "bin", "directory holding the vswitchd and vswctl binaries")
	dp := flag.String("datapath", "auto", "vswitchd --datapath")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "demo: must run as root (it creates network namespaces): sudo make demo")
		os.Exit(1)
	}
	t, err := topo.NewTopo()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() { <-sig; t.Cleanup(); os.Exit(130) }()
	err = run(t, *bin, *dp)
	if cerr := t.Cleanup(); cerr != nil {
		fmt.Fprintln(os.Stderr, "demo: cleanup:", cerr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo: FAILED:", err)
		os.Exit(1)
	}
	fmt.Println("\ndemo: OK, everything cleaned up")
}

func step(format string, args ...any) { fmt.Printf("\n==> "+format+"\n", args...) }

func run(t *topo.Topo, bin, dp string) error {
	vswitchd, _ := filepath.Abs(filepath.Join(bin, "vswitchd"))
	vswctl, _ := filepath.Abs(filepath.Join(bin, "vswctl"))
	for _, b := range []string{vswitchd, vswctl} {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("%s missing: run `make build` first", b)
		}
	}
	step("building the topology (namespaces prefixed %s)", t.Prefix)
	sw, err := t.NewNS("switch")
	if err != nil {
		return err
	}
	hv, err := t.NewNS("hv")
	if err != nil {
		return err
	}
	if err := topo.VethPair(hv, "uplink", sw, "to-hv"); err != nil {
		return err
	}
	if err := topo.Bridge(sw, "br0", topo.Port{Name: "to-hv", Hairpin: true}); err != nil {
		return err
	}
	fmt.Println("    switch: Linux bridge br0, port to-hv with hairpin on (reflective relay)")
	lldpadDir, err := os.MkdirTemp("", "vswitch-demo-lldpad-")
	if err != nil {
		return err
	}
	t.Defer("remove "+lldpadDir, func() error { return os.RemoveAll(lldpadDir) })
	evb := startEVBBridge(sw, lldpadDir)
	vlans := map[int]int{1: 100, 2: 100, 3: 200}
	var vm1 *topo.NS
	macs := map[int]string{}
	for i := 1; i <= 3; i++ {
		vm, err := t.NewNS(fmt.Sprintf("vm%d", i))
		if err != nil {
			return err
		}
		if i == 1 {
			vm1 = vm
		}
		if err := topo.VethPair(hv, fmt.Sprintf("vnet%d", i), vm, "eth0"); err != nil {
			return err
		}
		if err := topo.DisableOffloads(vm, "eth0"); err != nil {
			return err
		}
		if err := topo.AddrAdd(vm, "eth0", fmt.Sprintf("10.0.0.%d/24", i)); err != nil {
			return err
		}
		mac, err := vm.MAC("eth0")
		if err != nil {
			return err
		}
		macs[i] = mac.String()
		fmt.Printf("    vm%d: 10.0.0.%d on hv:vnet%d (VLAN %d)\n", i, i, i, vlans[i])
	}

	step("starting vswitchd in the hypervisor namespace")
	dir, err := os.MkdirTemp("", "vswitch-demo-")
	if err != nil {
		return err
	}
	t.Defer("remove "+dir, func() error { return os.RemoveAll(dir) })
	sock := filepath.Join(dir, "vswitchd.sock")
	d, err := hv.Start(vswitchd, "--uplink", "uplink", "--datapath", dp, "--state", filepath.Join(dir, "state.db"), "--socket", sock, "--log-level", "warn")
	if err != nil {
		return err
	}
	if err := waitSocket(sock, d); err != nil {
		return err
	}
	ctl := func(args ...string) error {
		cmd := exec.Command(vswctl, append([]string{"--socket", sock}, args...)...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		fmt.Printf("    $ vswctl %v\n", args)
		return cmd.Run()
	}
	if err := ctl("status"); err != nil {
		return err
	}
	if evb {
		step("802.1Qbg: vswitchd asks the switch (lldpad, EVB bridge) for reflective relay")
		if err := waitRelay(vswctl, sock, "granted", 15*time.Second); err != nil {
			return err
		}
		if err := ctl("status"); err != nil {
			return err
		}
	}
	for i := 1; i <= 3; i++ {
		args := []string{"add-port", fmt.Sprintf("vnet%d", i), "--vlan", fmt.Sprint(vlans[i]), "--mac", macs[i]}
		if i == 1 {
			args = append(args, "--pcp", "3")
		}
		if err := ctl(args...); err != nil {
			return err
		}
	}

	if evb {
		step("802.1Qbg VDP: each VM (port MAC + VLAN) is registered with the switch")
		if err := waitVSIs(vswctl, sock, 3, 15*time.Second); err != nil {
			return err
		}
		if err := ctl("vsis"); err != nil {
			return err
		}
	}
	step("vm1 -> vm2 (VLAN 100, through the reflective relay)")
	if err := topo.Ping(vm1, "10.0.0.1", "10.0.0.2", 3*time.Second); err != nil {
		return fmt.Errorf("vm1 could not reach vm2: %w", err)
	}
	fmt.Println("    reply from 10.0.0.2: OK")
	step("vm1 -> vm3 (VLAN 200): must fail")
	if err := topo.Ping(vm1, "10.0.0.1", "10.0.0.3", time.Second); err == nil {
		return fmt.Errorf("vm1 reached vm3 across VLANs")
	}
	fmt.Println("    no reply: VLANs are isolated")
	step("hairpin off on the switch: VEPA switches nothing locally, so vm1 -> vm2 must fail")
	if err := topo.Hairpin(sw, "to-hv", false); err != nil {
		return err
	}
	if err := topo.Ping(vm1, "10.0.0.1", "10.0.0.2", time.Second); err == nil {
		return fmt.Errorf("vm1 reached vm2 without reflective relay")
	}
	fmt.Println("    no reply: all traffic goes through the adjacent bridge")
	if err := topo.Hairpin(sw, "to-hv", true); err != nil {
		return err
	}
	step("port table and counters")
	if err := ctl("list-ports"); err != nil {
		return err
	}
	return ctl("stats")
}

func waitSocket(sock string, d *topo.Proc) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(sock); err == nil {
			return nil
		}
		select {
		case <-d.Done():
			return fmt.Errorf("vswitchd exited: %v\n%s", d.Err(), d.Output())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("vswitchd did not open %s within 10 s:\n%s", sock, d.Output())
}

// startEVBBridge runs lldpad on the switch as an EVB bridge that grants
// reflective relay, when lldpad is installed; it reports whether it does.
func startEVBBridge(sw *topo.NS, dir string) bool {
	if err := topo.BridgeSTP(sw, "br0", true); err != nil {
		fmt.Println("    (no EVB bridge: " + err.Error() + ")")
		return false
	}
	lp, err := topo.StartLLDPAD(sw, dir)
	if err == nil {
		err = lp.EVBBridge("to-hv", true)
	}
	if err == nil {
		// lldpad takes its VDP bridge role from the saved config at start.
		_ = lp.Stop()
		_, err = topo.StartLLDPAD(sw, dir)
	}
	if err != nil {
		fmt.Println("    (no EVB bridge: " + err.Error() + ")")
		return false
	}
	fmt.Println("    switch: lldpad on to-hv as 802.1Qbg EVB and VDP bridge, reflective relay capable (RRCAP)")
	return true
}

// waitRelay polls `vswctl -o json status` until the relay state is want.
func waitRelay(vswctl, sock, want string, d time.Duration) error {
	deadline := time.Now().Add(d)
	last := ""
	for time.Now().Before(deadline) {
		out, err := exec.Command(vswctl, "--socket", sock, "-o", "json", "status").Output()
		if err == nil {
			var st api.Status
			if json.Unmarshal(out, &st) == nil && st.Relay != nil {
				if last = st.Relay.State; last == want {
					return nil
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("reflective relay not %s after %v (last state %q)", want, d, last)
}

// waitVSIs polls `vswctl -o json vsis` until n VSIs are associated.
func waitVSIs(vswctl, sock string, n int, d time.Duration) error {
	deadline := time.Now().Add(d)
	got := 0
	for time.Now().Before(deadline) {
		out, err := exec.Command(vswctl, "--socket", sock, "-o", "json", "vsis").Output()
		if err == nil {
			var vs []api.VSI
			if json.Unmarshal(out, &vs) == nil {
				got = 0
				for _, v := range vs {
					if v.State == "associated" {
						got++
					}
				}
				if got == n {
					return nil
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("%d of %d VSIs associated after %v", got, n, d)
}
