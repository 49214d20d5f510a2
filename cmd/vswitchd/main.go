package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"os/user"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"

	"github.com/vswitch/vswitch/internal/daemon"
	"github.com/vswitch/vswitch/internal/libvirt/events"
	"github.com/vswitch/vswitch/internal/store"
	"github.com/vswitch/vswitch/internal/version"
	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/datapath"
	"github.com/vswitch/vswitch/pkg/port"
)

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("vswitchd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o daemon.Options
	var level string
	fs.StringVar(&o.Uplink, "uplink", "", "uplink `IF` facing the adjacent (reflective-relay) bridge (required)")
	fs.StringVar(&o.Datapath, "datapath", "auto", "datapath backend of the uplink: auto|afpacket|afxdp (auto: AF_XDP when its program loads and binds there)")
	fs.StringVar(&o.PortDatapath, "port-datapath", "afpacket", "backend of the VM ports: afpacket (guest checksum/TSO offloads work) or afxdp (VMs must turn those offloads off)")
	fs.StringVar(&o.Mode, "mode", "vepa", "forwarding mode: vepa (VM to VM through the adjacent bridge; veb while that bridge refuses reflective relay) or veb (switch VM to VM locally)")
	fs.StringVar(&o.StatePath, "state", store.DefaultPath, "state file `PATH`")
	fs.StringVar(&o.Socket, "socket", api.SocketFromEnv(), "API unix socket `PATH` (env VSWITCHD_SOCKET)")
	var group string
	fs.StringVar(&group, "socket-group", "", "`GROUP` (name or number) that owns the API socket: its members may use vswctl without root (default: root's group only)")
	fs.StringVar(&o.Metrics, "metrics", "", "serve Prometheus /metrics on TCP `ADDR` (e.g. :9477)")
	fs.IntVar(&o.UplinkQueues, "uplink-queues", 0, "uplink RX workers (0: one per CPU for afpacket, one per NIC queue for afxdp)")
	fs.IntVar(&o.MTU, "mtu", 1500, "MTU of the VM ports: longer frames are dropped as malformed (raise the uplink MTU by 4, or 8 with S-channels)")
	var prio string
	fs.StringVar(&prio, "datapath-priority", "rt", "scheduling of the datapath threads (all of vswitchd's but the Go runtime's monitor): rt (SCHED_RR 1, ahead of the VMs, like kernel softirq), nice (nice -10) or normal")
	var lldp time.Duration
	fs.DurationVar(&lldp, "lldp-interval", 30*time.Second, "LLDP interval of the EVB station that asks the adjacent bridge for reflective relay (0: no EVB station)")
	var evb evbFlags
	fs.StringVar(&evb.r, "evb-r", "3", "EVB: ECP retries (R, 0-7) the station proposes; the larger of its and the bridge's is used")
	fs.StringVar(&evb.rte, "evb-rte", "8", "EVB: ECP retransmission exponent (RTE, 0-31: 10us x 2^RTE, 8 = 2.56ms) the station proposes; the larger of its and the bridge's is used")
	fs.StringVar(&evb.rwd, "evb-rwd", "20", "EVB: VDP resource wait delay exponent (RWD, 0-31: 10us x 2^RWD, 20 = 10.5s) the station proposes, the larger of its and the bridge's being used; or remote: the bridge's")
	fs.StringVar(&evb.rka, "evb-rka", "20", "EVB: VDP keep-alive exponent (RKA, 0-31: 10us x 2^RKA, 20 = 10.5s) the station proposes, the larger of its and the bridge's being used; or remote: the bridge's")
	fs.StringVar(&o.Libvirt, "libvirt", "", "follow libvirtd's domain events at `URI` (qemu:///system, or the path of its socket): ports for NICs hot-plugged or changed with virsh --live, reconciled with the running domains on every connection (default: off; the libvirt hook works without it)")
	var perPort, perVLAN, fdbMax int
	fs.IntVar(&perPort, "max-macs-per-port", datapath.DefaultMaxMACsPerPort, "MACs a port learns unless its max_macs says otherwise (0: only registered MACs pass); more are dropped as mac_limit")
	fs.IntVar(&perVLAN, "max-macs-per-vlan", datapath.DefaultMaxMACsPerVLAN, "MACs all ports together learn in one VLAN (of one S-channel); more are dropped as fdb_full")
	fs.IntVar(&fdbMax, "fdb-max", datapath.DefaultFDBMax, "MACs the switch learns in all (the table takes 64 bytes per MAC); more are dropped as fdb_full")
	var preassoc time.Duration
	fs.DurationVar(&preassoc, "preassociate-timeout", 5*time.Minute, "how long the VSIs of a VM migrating in stay pre-associated (802.1Qbg VDP) when the VM sends nothing; they are associated as soon as it sends its first frame, or libvirt resumes it here (--libvirt) (0: until then); counted from the port's addition, before the memory is copied: without --libvirt, set it longer than the longest migration")
	fs.StringVar(&level, "log-level", "info", "log level: debug|info|warn|error")
	var off offlineArgs
	fs.BoolVar(&off.check, "check", false, "check the --state file and print its ports and problems, then exit (0: vswitchd starts with it and every port; 1: not); works while vswitchd cannot start, refuses a file a running vswitchd holds")
	fs.StringVar(&off.salvage, "salvage", "", "copy the usable ports of the --state file, damaged or not, into the new state file `NEWFILE` (with --check), then exit")
	fs.StringVar(&off.dropPort, "drop-port", "", "delete port `NAME`'s record from the --state file while vswitchd is stopped, then exit")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: vswitchd --uplink IF [--datapath auto|afpacket|afxdp] [--port-datapath afpacket|afxdp] [--mode vepa|veb] [--state PATH] [--socket PATH] [--metrics ADDR] [--max-macs-per-port N] [--max-macs-per-vlan N] [--fdb-max N] [--libvirt URI] [--log-level info]\n")
		fmt.Fprintf(stderr, "       vswitchd [--state PATH] --check [--salvage NEWFILE] | --drop-port NAME   (offline, vswitchd stopped)\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "vswitchd: unexpected argument %q (see vswitchd -h)\n", fs.Arg(0))
		return 2
	}
	if off.set() {
		if err := off.validate(); err != nil {
			fmt.Fprintf(stderr, "vswitchd: %v\n", err)
			return 2
		}
		return offline(o.StatePath, off, os.Stdout, stderr)
	}
	if o.Datapath == "" || o.PortDatapath == "" {
		fmt.Fprintln(stderr, "vswitchd: --datapath and --port-datapath need a value (auto|afpacket|afxdp, afpacket|afxdp)")
		return 2
	}
	if err := daemon.CheckDatapaths(o.Datapath, o.PortDatapath); err != nil {
		fmt.Fprintf(stderr, "vswitchd: %v\n", err)
		return 2
	}
	if o.Mode != "vepa" && o.Mode != "veb" {
		fmt.Fprintf(stderr, "vswitchd: invalid --mode %q: use vepa or veb\n", o.Mode)
		return 2
	}
	switch {
	case lldp == 0:
		o.LLDPInterval = -1
	case lldp < time.Second || lldp > time.Hour:
		fmt.Fprintf(stderr, "vswitchd: invalid --lldp-interval %v: use 1s-1h, or 0 for no EVB station\n", lldp)
		return 2
	default:
		o.LLDPInterval = lldp
	}
	local, err := evb.local()
	if err != nil {
		fmt.Fprintf(stderr, "vswitchd: %v\n", err)
		return 2
	}
	o.EVBLocal = local
	switch {
	case preassoc == 0:
		o.PreassociateTimeout = -1
	case preassoc < time.Second || preassoc > 24*time.Hour:
		fmt.Fprintf(stderr, "vswitchd: invalid --preassociate-timeout %v: use 1s-24h, or 0 to wait for the VM's first frame\n", preassoc)
		return 2
	default:
		o.PreassociateTimeout = preassoc
	}
	if o.MTU < 68 || o.MTU > 65000 {
		fmt.Fprintf(stderr, "vswitchd: invalid --mtu %d: use 68-65000\n", o.MTU)
		return 2
	}
	if port.CheckNumber(port.FieldMaxMACs, perPort) != nil { // the range of a port's max_macs
		fmt.Fprintf(stderr, "vswitchd: invalid --max-macs-per-port %d: use 0-%d (0: ports learn no MACs unless their max_macs says so)\n", perPort, port.MaxLearnedMACs)
		return 2
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"max-macs-per-vlan", perVLAN}, {"fdb-max", fdbMax}} {
		if f.v < 1 || f.v > port.MaxLearnedMACs {
			fmt.Fprintf(stderr, "vswitchd: invalid --%s %d: use 1-%d\n", f.name, f.v, port.MaxLearnedMACs)
			return 2
		}
	}
	o.FDB = datapath.FDBLimits{PerPort: perPort, PerVLAN: perVLAN, Total: fdbMax}
	if perPort == 0 {
		o.FDB.PerPort = datapath.NoMACs
	}
	switch prio {
	case "rt":
		o.Priority = datapath.Priority{RealTime: 1}
	case "nice":
		o.Priority = datapath.Priority{Nice: -10}
	case "normal":
	default:
		fmt.Fprintf(stderr, "vswitchd: invalid --datapath-priority %q: use rt, nice or normal\n", prio)
		return 2
	}
	if o.Libvirt != "" {
		if _, err := events.ParseURI(o.Libvirt); err != nil {
			fmt.Fprintf(stderr, "vswitchd: invalid --libvirt: %v\n", err)
			return 2
		}
	}
	if o.Uplink == "" {
		fmt.Fprintln(stderr, "vswitchd: --uplink IF is required (the NIC facing the adjacent bridge)")
		return 2
	}
	if group != "" {
		gid, err := lookupGroup(group)
		if err != nil {
			fmt.Fprintf(stderr, "vswitchd: invalid --socket-group: %v\n", err)
			return 2
		}
		o.SocketGroup = &gid
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		fmt.Fprintf(stderr, "vswitchd: invalid --log-level %q: use debug, info, warn or error\n", level)
		return 2
	}
	o.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))
	o.Version = version.Get().Version
	if path := os.Getenv("VSWITCHD_CPUPROFILE"); path != "" {
		// For profiling the datapath under the benchmark harness.
		f, err := os.Create(path)
		if err != nil {
			fmt.Fprintf(stderr, "vswitchd: VSWITCHD_CPUPROFILE: %v\n", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "vswitchd: start CPU profile: %v\n", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// The first signal starts a graceful stop; a second one ends the
	// process at once (default signal behaviour again).
	context.AfterFunc(ctx, stop)
	if err := daemon.Run(ctx, o); err != nil {
		fmt.Fprintf(stderr, "vswitchd: %v\n", err)
		return 1
	}
	return 0
}

// lookupGroup resolves a group name or number (from /etc/group; no cgo).
func lookupGroup(s string) (int, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("group %q: a group number is not negative", s)
		}
		return n, nil
	}
	g, err := user.LookupGroup(s)
	if err != nil {
		return 0, fmt.Errorf("group %q: %w", s, err)
	}
	return strconv.Atoi(g.Gid)
}
