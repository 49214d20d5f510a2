package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// contender is one switch under test.
type contender struct {
	name string
	note string
	kind vmLinkKind
	// tagUp: frames entering from the uplink carry VID 100 (the contender
	// tags); false for kernel contenders, which tag nothing.
	tagUp bool
	// noUplink: the up2vm test does not apply (wire).
	noUplink bool
	// only64: of the throughput tests only vm2vm_64 runs (tap rows).
	only64 bool
	// noHairpin: SW's uplink port without hairpin. Only for the local
	// switching reference, whose bridge spans the uplink too (hairpin there
	// would reflect its floods back into it: a loop).
	noHairpin bool
	// setup starts/configures the switch in t.hv. It returns the switching
	// process, or nil for in-kernel switching.
	setup func(ctx context.Context, h *harness, t *topo) (*proc, error)
}

// Contender names, in run order.
const (
	Wire             = "wire"
	VswitchdAFPacket = "vswitchd-afpacket"
	VswitchdAFXDP    = "vswitchd-afxdp"
	VswitchdAFXDPXSK = "vswitchd-afxdp-xsk"
	MacvlanVEPA      = "macvlan-vepa"
	OVSAFPacket      = "ovs-afpacket"
	OVSAFXDP         = "ovs-afxdp"
	LinuxBridge      = "linux-bridge"
	EBPFVEPA         = "ebpf-vepa"
	// VMs on taps (what QEMU and vhost-net read and write).
	VswitchdAFPacketTap = "vswitchd-afpacket-tap"
	VswitchdAFXDPTap    = "vswitchd-afxdp-tap"
	MacvtapVEPA         = "macvtap-vepa"
)

// AllContenders lists every contender name in run order.
var AllContenders = []string{Wire, VswitchdAFPacket, VswitchdAFXDP, VswitchdAFXDPXSK, MacvlanVEPA, OVSAFPacket, OVSAFXDP, LinuxBridge, EBPFVEPA,
	VswitchdAFPacketTap, VswitchdAFXDPTap, MacvtapVEPA}

// vswitchdArgs are the datapath flags of each vswitchd row.
var vswitchdArgs = map[string][]string{
	VswitchdAFPacket:    {"--datapath", "afpacket"},
	VswitchdAFXDP:       {"--datapath", "afxdp"}, // VM ports on AF_PACKET, the default
	VswitchdAFXDPXSK:    {"--datapath", "afxdp", "--port-datapath", "afxdp"},
	VswitchdAFPacketTap: {"--datapath", "afpacket"},
	VswitchdAFXDPTap:    {"--datapath", "afxdp"}, // VM ports (taps) on AF_PACKET, the default
}

func contenderByName(name string) (contender, bool) {
	switch name {
	case Wire:
		return contender{name: Wire, kind: vmWire, noUplink: true,
			note:  "generator -> bare veth pair (ceiling)",
			setup: func(context.Context, *harness, *topo) (*proc, error) { return nil, nil }}, true
	case VswitchdAFPacket, VswitchdAFXDP, VswitchdAFXDPXSK:
		args := vswitchdArgs[name]
		note := "VEPA via hairpin, VID 100"
		if name == VswitchdAFXDPXSK {
			note += ", VM ports on AF_XDP too"
		}
		return contender{name: name, kind: vmVeth, tagUp: true, note: note,
			setup: func(ctx context.Context, h *harness, t *topo) (*proc, error) {
				return setupVswitchd(ctx, h, t, args...)
			}}, true
	case MacvlanVEPA:
		return contender{name: name, kind: vmMacvlan,
			note:  "kernel, untagged via hairpin",
			setup: func(context.Context, *harness, *topo) (*proc, error) { return nil, nil }}, true
	case VswitchdAFPacketTap, VswitchdAFXDPTap:
		args := vswitchdArgs[name]
		return contender{name: name, kind: vmTap, tagUp: true, only64: true,
			note: "VMs on taps (IFF_VNET_HDR), VEPA via hairpin, VID 100",
			setup: func(ctx context.Context, h *harness, t *topo) (*proc, error) {
				return setupVswitchd(ctx, h, t, args...)
			}}, true
	case MacvtapVEPA:
		return contender{name: name, kind: vmMacvtap, only64: true,
			note:  "kernel macvtap (libvirt type=direct), untagged via hairpin",
			setup: func(context.Context, *harness, *topo) (*proc, error) { return nil, nil }}, true
	case OVSAFPacket, OVSAFXDP:
		afxdp := name == OVSAFXDP
		return contender{name: name, kind: vmVeth, tagUp: true,
			note: "netdev dp, VEPA flows, VID 100",
			setup: func(ctx context.Context, h *harness, t *topo) (*proc, error) {
				return setupOVS(ctx, t, afxdp)
			}}, true
	case EBPFVEPA:
		return contender{name: name, kind: vmVeth, tagUp: true,
			note:  "ceiling of veth-attached VMs: 2 tc eBPF programs, no userspace, VID 100",
			setup: setupEBPFVEPA}, true
	case LinuxBridge:
		return contender{name: name, kind: vmVeth, noHairpin: true,
			note:  "kernel, local switching (no VEPA)",
			setup: setupLinuxBridge}, true
	}
	return contender{}, false
}

// setupLinuxBridge joins vnet1, vnet2 and the uplink in one HV bridge: VM to
// VM is switched locally, uplink to VM untagged.
func setupLinuxBridge(ctx context.Context, _ *harness, t *topo) (*proc, error) {
	steps := [][]string{
		{"-n", t.hv.Name, "link", "add", "hvbr", "type", "bridge"},
		{"-n", t.hv.Name, "link", "set", vnet1, "master", "hvbr"},
		{"-n", t.hv.Name, "link", "set", vnet2, "master", "hvbr"},
		{"-n", t.hv.Name, "link", "set", uplinkIf, "master", "hvbr"},
		{"-n", t.hv.Name, "link", "set", "hvbr", "up"},
	}
	for _, s := range steps {
		if err := ipCmd(ctx, s...); err != nil {
			return nil, err
		}
	}
	for _, k := range []string{"net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables", "net.bridge.bridge-nf-call-arptables"} {
		_ = t.hv.Sysctl(k, "0")
	}
	return nil, nil
}

// setupVswitchd starts our daemon in HV with the datapath flags dpArgs and
// adds both VM ports on VID 100.
func setupVswitchd(ctx context.Context, h *harness, t *topo, dpArgs ...string) (*proc, error) {
	_, vswctl, err := h.vswitchdBinaries(ctx)
	if err != nil {
		return nil, err
	}
	p, sock, err := startVswitchd(ctx, h, t, "", dpArgs...)
	if err != nil {
		return nil, err
	}
	for _, port := range []string{vnet1, vnet2} {
		if _, err := run(ctx, nil, vswctl, "--socket", sock, "add-port", port, "--vlan", fmt.Sprint(benchVID)); err != nil {
			return nil, err
		}
	}
	time.Sleep(300 * time.Millisecond) // let the daemon attach the ports
	if !p.alive() {
		return nil, fmt.Errorf("vswitchd exited: %s", p.tail())
	}
	return p, nil
}

// startVswitchd starts our daemon in HV with the datapath flags dpArgs,
// its state and API socket in t's temp dir (names suffixed with tag), and
// waits for the socket. It returns the process and the socket's path.
func startVswitchd(ctx context.Context, h *harness, t *topo, tag string, dpArgs ...string) (*proc, string, error) {
	vswitchd, _, err := h.vswitchdBinaries(ctx)
	if err != nil {
		return nil, "", err
	}
	sock := filepath.Join(t.tmp, "vswitchd"+tag+".sock")
	args := append([]string{"--uplink", uplinkIf}, dpArgs...)
	args = append(args, "--state", filepath.Join(t.tmp, "state"+tag+".db"), "--socket", sock, "--log-level", "warn")
	p, err := t.start("vswitchd", t.hv.Name, nil, vswitchd, args...)
	if err != nil {
		return nil, "", err
	}
	if err := waitFor(ctx, 10*time.Second, p, func() bool { _, err := os.Stat(sock); return err == nil }); err != nil {
		return nil, "", fmt.Errorf("vswitchd %s: %w", strings.Join(dpArgs, " "), err)
	}
	return p, sock, nil
}

// waitFor polls cond until it holds, the process dies or d passes.
func waitFor(ctx context.Context, d time.Duration, p *proc, cond func() bool) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return nil
		}
		if p != nil && !p.alive() {
			return fmt.Errorf("exited early: %v: %s", p.err, p.tail())
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %v", d)
}

// setupOVS starts a private ovsdb-server and ovs-vswitchd (in HV) with a
// userspace (netdev) bridge, the uplink as a trunk and both VM ports as
// access ports with tag=100. NORMAL would switch VM to VM locally, so the
// bridge gets explicit VEPA flows instead: everything from a VM is tagged
// and sent to the uplink, frames from the uplink are untagged and
// delivered by destination MAC.
func setupOVS(ctx context.Context, t *topo, afxdp bool) (*proc, error) {
	for _, b := range []string{"ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl"} {
		if _, err := exec.LookPath(b); err != nil {
			return nil, fmt.Errorf("%s not installed (apt-get install openvswitch-switch)", b)
		}
	}
	schema := "/usr/share/openvswitch/vswitch.ovsschema"
	dir := filepath.Join(t.tmp, "ovs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("ovs dir: %w", err)
	}
	env := []string{"OVS_RUNDIR=" + dir, "OVS_DBDIR=" + dir, "OVS_LOGDIR=" + dir, "OVS_SYSCONFDIR=" + dir}
	db := filepath.Join(dir, "conf.db")
	dbsock := filepath.Join(dir, "db.sock")
	if _, err := run(ctx, env, "ovsdb-tool", "create", db, schema); err != nil {
		return nil, err
	}
	dbp, err := t.start("ovsdb-server", "", env, "ovsdb-server", db,
		"--remote=punix:"+dbsock, "--unixctl="+filepath.Join(dir, "ovsdb-server.ctl"),
		"--pidfile="+filepath.Join(dir, "ovsdb-server.pid"), "--log-file="+filepath.Join(dir, "ovsdb-server.log"),
		"-vconsole:off", "--no-chdir")
	if err != nil {
		return nil, err
	}
	if err := waitFor(ctx, 10*time.Second, dbp, func() bool { _, err := os.Stat(dbsock); return err == nil }); err != nil {
		return nil, fmt.Errorf("ovsdb-server: %w", err)
	}
	vsctl := func(args ...string) (string, error) {
		return run(ctx, env, "ovs-vsctl", append([]string{"--db=unix:" + dbsock, "--timeout=15"}, args...)...)
	}
	if _, err := vsctl("--no-wait", "init"); err != nil {
		return nil, err
	}
	vsp, err := t.start("ovs-vswitchd", t.hv.Name, env, "ovs-vswitchd", "unix:"+dbsock,
		"--unixctl="+filepath.Join(dir, "ovs-vswitchd.ctl"),
		"--pidfile="+filepath.Join(dir, "ovs-vswitchd.pid"), "--log-file="+filepath.Join(dir, "ovs-vswitchd.log"),
		"-vconsole:off", "--no-chdir")
	if err != nil {
		return nil, err
	}
	ctl := filepath.Join(dir, "ovs-vswitchd.ctl")
	if err := waitFor(ctx, 10*time.Second, vsp, func() bool { _, err := os.Stat(ctl); return err == nil }); err != nil {
		return nil, fmt.Errorf("ovs-vswitchd: %w", err)
	}
	if afxdp {
		types, err := vsctl("get", "Open_vSwitch", ".", "iface_types")
		if err != nil {
			return nil, err
		}
		if !strings.Contains(types, "afxdp") {
			return nil, fmt.Errorf("this ovs-vswitchd has no afxdp interface type (iface_types %s)", strings.TrimSpace(types))
		}
	}
	portArgs := func(name string, tag int) []string {
		a := []string{"--", "add-port", "br0", name}
		if tag != 0 {
			a = append(a, fmt.Sprintf("tag=%d", tag))
		}
		if afxdp {
			a = append(a, "--", "set", "interface", name, "type=afxdp")
		}
		return a
	}
	args := []string{"add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev", "fail-mode=secure"}
	args = append(args, portArgs(uplinkIf, 0)...)
	args = append(args, portArgs(vnet1, benchVID)...)
	args = append(args, portArgs(vnet2, benchVID)...)
	if _, err := vsctl(args...); err != nil {
		return nil, fmt.Errorf("%w (log: %s)", err, logTail(filepath.Join(dir, "ovs-vswitchd.log")))
	}
	for _, port := range []string{uplinkIf, vnet1, vnet2} {
		out, _ := vsctl("get", "interface", port, "error")
		out = strings.TrimSpace(out)
		if out != "" && out != "[]" {
			return nil, fmt.Errorf("ovs port %s: %s", port, out)
		}
		if ofp, _ := vsctl("get", "interface", port, "ofport"); strings.TrimSpace(ofp) == "-1" {
			return nil, fmt.Errorf("ovs port %s has no ofport (log: %s)", port, logTail(filepath.Join(dir, "ovs-vswitchd.log")))
		}
	}
	flows := []string{
		"priority=0,actions=drop",
		fmt.Sprintf("priority=10,in_port=%s,actions=mod_vlan_vid:%d,output:%s", vnet1, benchVID, uplinkIf),
		fmt.Sprintf("priority=10,in_port=%s,actions=mod_vlan_vid:%d,output:%s", vnet2, benchVID, uplinkIf),
		fmt.Sprintf("priority=10,in_port=%s,dl_vlan=%d,dl_dst=%s,actions=strip_vlan,output:%s", uplinkIf, benchVID, vm1MAC, vnet1),
		fmt.Sprintf("priority=10,in_port=%s,dl_vlan=%d,dl_dst=%s,actions=strip_vlan,output:%s", uplinkIf, benchVID, vm2MAC, vnet2),
		fmt.Sprintf("priority=10,in_port=%s,dl_vlan=%d,dl_dst=ff:ff:ff:ff:ff:ff,actions=strip_vlan,output:%s,output:%s", uplinkIf, benchVID, vnet1, vnet2),
	}
	for _, f := range flows {
		if _, err := run(ctx, env, "ovs-ofctl", "add-flow", "br0", f); err != nil {
			return nil, err
		}
	}
	if !vsp.alive() {
		return nil, fmt.Errorf("ovs-vswitchd exited: %s", logTail(filepath.Join(dir, "ovs-vswitchd.log")))
	}
	return vsp, nil
}

func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "no log"
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 3 {
		lines = lines[len(lines)-3:]
	}
	return strings.Join(lines, " | ")
}
