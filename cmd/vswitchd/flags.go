package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/vswitch/vswitch/internal/daemon"
	"github.com/vswitch/vswitch/internal/flagfile"
	"github.com/vswitch/vswitch/internal/libvirt/events"
	"github.com/vswitch/vswitch/internal/logging"
	"github.com/vswitch/vswitch/internal/rxwait"
	"github.com/vswitch/vswitch/internal/store"
	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/datapath"
	"github.com/vswitch/vswitch/pkg/port"
)

// defaultConfig is the config file read when --config is not given; it
// may be absent.
const defaultConfig = "/etc/vswitch/vswitchd.conf"

// synopsis is the usage's first lines (--help, the man page).
const synopsis = `usage: vswitchd --uplink IF [--uplink-wait 1m] [--datapath auto|afpacket|afxdp] [--port-datapath afpacket|afxdp] [--mode vepa|veb] [--state PATH] [--socket PATH] [--metrics ADDR] [--max-macs-per-port N] [--max-macs-per-vlan N] [--fdb-max N] [--libvirt URI] [--evb-r N] [--evb-rte N] [--evb-rwd N|remote] [--evb-rka N|remote] [--log-level info] [--config FILE]
       vswitchd [--state PATH] --check [--salvage NEWFILE] | --drop-port NAME   (offline, vswitchd stopped)
       vswitchd --version
`

// settings are the values of vswitchd's flags as given, before they are
// checked (options).
type settings struct {
	o                        daemon.Options
	level, logFormat         string
	group, prio              string
	lldp, preassoc           time.Duration
	uplinkWait               time.Duration
	perPort, perVLAN, fdbMax int
	evb                      evbFlags
	off                      offlineArgs
	config                   string
	version                  bool
	man                      bool // --man: write vswitchd(8) (make man)
}

// FlagSet returns vswitchd's flags with their defaults and help, parsing
// nothing: the man page is rendered from it.
func FlagSet() *pflag.FlagSet { return newFlagSet(&settings{}) }

// newFlagSet defines vswitchd's flags on a new FlagSet that stores into s.
// The config file (--config) sets the same flags through it.
func newFlagSet(s *settings) *pflag.FlagSet {
	fs := pflag.NewFlagSet("vswitchd", pflag.ContinueOnError)
	fs.SortFlags = false
	o := &s.o
	fs.StringVar(&o.Uplink, "uplink", "", "uplink `IF` facing the adjacent (reflective-relay) bridge (required)")
	fs.DurationVar(&s.uplinkWait, "uplink-wait", time.Minute, "at start, wait this long for an uplink that does not exist yet (a bond or VLAN still being created, a NIC udev still renames), the API answering \"starting\" meanwhile; then give up (exit 1) (0: do not wait)")
	fs.StringVar(&o.Datapath, "datapath", "auto", "datapath backend of the uplink: auto|afpacket|afxdp (auto: AF_XDP when its program loads and binds there)")
	fs.StringVar(&o.PortDatapath, "port-datapath", "afpacket", "backend of the VM ports: afpacket (guest checksum/TSO offloads work) or afxdp (VMs must turn those offloads off)")
	fs.StringVar(&o.Mode, "mode", "vepa", "forwarding mode: vepa (VM to VM through the adjacent bridge; veb while that bridge refuses reflective relay) or veb (switch VM to VM locally)")
	fs.StringVar(&o.StatePath, "state", store.DefaultPath, "state file `PATH`")
	fs.StringVar(&o.Socket, "socket", api.SocketFromEnv(), "API unix socket `PATH` (env VSWITCHD_SOCKET)")
	fs.StringVar(&s.group, "socket-group", "", "`GROUP` (name or number) that owns the API socket: its members may use vswctl without root (default: root's group only)")
	fs.StringVar(&o.Metrics, "metrics", "", "serve Prometheus /metrics on TCP `ADDR` (e.g. :9477)")
	fs.IntVar(&o.UplinkQueues, "uplink-queues", 0, "uplink RX workers (0: one per CPU; for afxdp on a NIC with several RX queues, one per queue)")
	fs.IntVar(&o.MTU, "mtu", 1500, "MTU of the VM ports: longer frames are dropped as malformed (raise the uplink MTU by 4, or 8 with S-channels)")
	fs.StringVar(&s.prio, "datapath-priority", "rt", "scheduling of the datapath threads (all of vswitchd's but the Go runtime's monitor): rt (SCHED_RR 1, ahead of the VMs, like kernel softirq), nice (nice -10) or normal")
	fs.BoolVar(&o.CPUPoll, "cpu-poll", true, "receive on the CPU where frames arrive: a poller per CPU sleeps there on the queues whose frames arrive there and runs the switch itself when one comes (as the kernel's softirq does), so a VM's frame wakes no thread on another CPU; while frames stream, queues are received on threads of their own as without it (false: the Go netpoller's one thread wakes for every queue, and --busy-poll applies)")
	fs.DurationVar(&o.BusyPoll, "busy-poll", rxwait.DefaultBusyPoll, fmt.Sprintf("with --cpu-poll=false: after a receiving queue found no more frames, poll every queue for up to this long before sleeping (NAPI busy polling): a VM's answer coming back within it crosses the switch without waking a thread; at most 1/%d of a CPU; 1us-%v, or 0: sleep at once", rxwait.SpinShare, rxwait.MaxBusyPoll))
	fs.DurationVar(&s.lldp, "lldp-interval", 30*time.Second, "LLDP interval of the EVB station that asks the adjacent bridge for reflective relay (0: no EVB station)")
	fs.StringVar(&s.evb.r, "evb-r", "3", "EVB: ECP retries (R, 0-7) the station proposes; the larger of its and the bridge's is used")
	fs.StringVar(&s.evb.rte, "evb-rte", "8", "EVB: ECP retransmission exponent (RTE, 0-31: 10us x 2^RTE, 8 = 2.56ms) the station proposes; the larger of its and the bridge's is used, at most 18 (2.62s)")
	fs.StringVar(&s.evb.rwd, "evb-rwd", "20", "EVB: VDP resource wait delay exponent (RWD, 0-31: 10us x 2^RWD, 20 = 10.5s) the station proposes, the larger of its and the bridge's being used; or remote: the bridge's")
	fs.StringVar(&s.evb.rka, "evb-rka", "20", "EVB: VDP keep-alive exponent (RKA, 0-31: 10us x 2^RKA, 20 = 10.5s) the station proposes, the larger of its and the bridge's being used; or remote: the bridge's; at least 14 (164ms) is used")
	fs.StringVar(&o.CDCP, "cdcp", daemon.CDCPAuto, "S-channels and the adjacent bridge (802.1Qbg CDCP): auto (ask for each port's S-channel; follow the answer of a bridge that speaks CDCP: a port whose S-channel it did not grant is down; with a bridge without CDCP S-channels stay as configured), on (an S-channel carries nothing until the bridge grants it) or off (S-channels as configured, no CDCP)")
	fs.StringVar(&o.Libvirt, "libvirt", "", "follow libvirtd's domain events at `URI` (qemu:///system, or the path of its socket): ports for NICs hot-plugged or changed with virsh --live, reconciled with the running domains on every connection (default: off; the libvirt hook works without it)")
	fs.IntVar(&s.perPort, "max-macs-per-port", datapath.DefaultMaxMACsPerPort, "MACs a port learns unless its max_macs says otherwise (0: only registered MACs pass); more are dropped as mac_limit")
	fs.IntVar(&s.perVLAN, "max-macs-per-vlan", datapath.DefaultMaxMACsPerVLAN, "MACs all ports together learn in one VLAN (of one S-channel); more are dropped as fdb_full")
	fs.IntVar(&s.fdbMax, "fdb-max", datapath.DefaultFDBMax, "MACs the switch learns in all (the table takes 64 bytes per MAC); more are dropped as fdb_full")
	fs.DurationVar(&s.preassoc, "preassociate-timeout", 5*time.Minute, "how long the VSIs of a VM migrating in stay pre-associated (802.1Qbg VDP) when the VM sends nothing; they are associated as soon as it sends its first frame, or libvirt resumes it here (--libvirt) (0: until then); counted from the port's addition, before the memory is copied: without --libvirt, set it longer than the longest migration")
	fs.StringVar(&s.level, "log-level", "info", "log level: debug|info|warn|error")
	fs.StringVar(&s.logFormat, "log-format", string(logging.Auto), "log format on stderr: text, json, journal (syslog priority prefixes, no timestamp: for systemd's journal) or auto (journal when stderr is the journal, else text)")
	fs.StringVar(&s.config, "config", defaultConfig, "read settings from `FILE`: one \"flag = value\" per line (long flag names, # comments); flags on the command line win; the default file may be absent (\"\": none)")
	fs.BoolVar(&s.off.check, "check", false, "check the --state file and print its ports and problems, then exit (0: vswitchd starts with it and every port; 1: not); works while vswitchd cannot start, refuses a file a running vswitchd holds")
	fs.StringVar(&s.off.salvage, "salvage", "", "copy the usable ports of the --state file, damaged or not, into the new state file `NEWFILE` (with --check), then exit")
	fs.StringVar(&s.off.dropPort, "drop-port", "", "delete port `NAME`'s record from the --state file while vswitchd is stopped, then exit")
	fs.BoolVar(&s.version, "version", false, "print vswitchd's version and exit")
	fs.BoolVar(&s.man, "man", false, "write the manual page vswitchd(8) on stdout and exit (make man)")
	_ = fs.MarkHidden("man") // for the build, not for operators
	for name, why := range map[string]string{
		"config": "it names the file", "version": "a one-off command", "man": "a one-off command",
		"check": "a one-off command", "salvage": "a one-off command", "drop-port": "a one-off command",
	} {
		_ = fs.SetAnnotation(name, flagfile.NotInFile, []string{why})
	}
	return fs
}

// gnuArgs rewrites the old single-dash spelling of vswitchd's long flags
// (Go's flag package: -uplink eth0, -uplink=eth0) as pflag's --uplink, so
// scripts written for it keep working. vswitchd has no one-letter flags
// (but -h), so any -word is a long flag (an unknown one is then reported
// as --word); a flag's value (--max-macs-per-port -1) and what follows
// "--" are left alone.
func gnuArgs(fs *pflag.FlagSet, args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		if len(a) > 2 && a[0] == '-' && isLetter(a[1]) {
			a = "-" + a
		}
		out = append(out, a)
		// A flag whose value is the next argument: pass that on as it is.
		if name, ok := strings.CutPrefix(a, "--"); ok && !strings.Contains(name, "=") {
			if f := fs.Lookup(name); f != nil && f.NoOptDefVal == "" && i+1 < len(args) {
				i++
				out = append(out, args[i])
			}
		}
	}
	return out
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// flagError is a bad flag value (exit 2); the config file's origin of the
// flag, when it came from there, is prefixed to the message.
type flagError struct {
	flag string // the flag the message is about
	msg  string
}

func (e *flagError) Error() string { return e.msg }

func badFlag(flag, format string, args ...any) error {
	return &flagError{flag: flag, msg: fmt.Sprintf(format, args...)}
}

// withOrigin prefixes "FILE:LINE: " to a flagError about a flag the config
// file set.
func withOrigin(err error, origins flagfile.Origins) error {
	var fe *flagError
	if errors.As(err, &fe) {
		if at, ok := origins[fe.flag]; ok {
			return fmt.Errorf("%s: %w", at, err)
		}
	}
	return err
}

// options checks the daemon's settings and turns them into its Options.
// Every message names the flag and says what to use.
func (s *settings) options() (daemon.Options, error) {
	o := s.o
	if o.Datapath == "" || o.PortDatapath == "" {
		f := "datapath"
		if o.Datapath != "" {
			f = "port-datapath"
		}
		return o, badFlag(f, "--datapath and --port-datapath need a value (auto|afpacket|afxdp, afpacket|afxdp)")
	}
	if err := daemon.CheckDatapaths(o.Datapath, o.PortDatapath); err != nil {
		var de *daemon.DatapathError
		if errors.As(err, &de) {
			return o, badFlag(de.Flag, "%v", err)
		}
		return o, err
	}
	// Empty, they would fail only once the daemon runs (exit 1, which
	// systemd restarts forever), the uplink already touched: "socket ="
	// in the config file reads like "the default", and is not.
	if o.StatePath == "" {
		return o, badFlag("state", "--state needs a PATH: leave it out for the default, %s", store.DefaultPath)
	}
	if o.Socket == "" {
		return o, badFlag("socket", "--socket needs a PATH: leave it out for the default, %s", api.SocketFromEnv())
	}
	// datapath.ParseMode takes "" for its default (vepa); a flag given
	// empty is refused, as --datapath's is.
	if _, err := datapath.ParseMode(o.Mode); err != nil || o.Mode == "" {
		return o, badFlag("mode", "invalid --mode %q: use vepa or veb", o.Mode)
	}
	switch {
	case s.lldp == 0:
		o.LLDPInterval = -1
	case s.lldp < time.Second || s.lldp > time.Hour:
		return o, badFlag("lldp-interval", "invalid --lldp-interval %v: use 1s-1h, or 0 for no EVB station", s.lldp)
	default:
		o.LLDPInterval = s.lldp
	}
	if err := daemon.CheckCDCP(o.CDCP, o.LLDPInterval >= 0); err != nil {
		return o, badFlag("cdcp", "%v", err)
	}
	local, err := s.evb.local()
	if err != nil {
		return o, err
	}
	o.EVBLocal = local
	switch {
	case s.preassoc == 0:
		o.PreassociateTimeout = -1
	case s.preassoc < time.Second || s.preassoc > 24*time.Hour:
		return o, badFlag("preassociate-timeout", "invalid --preassociate-timeout %v: use 1s-24h, or 0 to wait for the VM's first frame", s.preassoc)
	default:
		o.PreassociateTimeout = s.preassoc
	}
	if o.MTU < 68 || o.MTU > 65000 {
		return o, badFlag("mtu", "invalid --mtu %d: use 68-65000", o.MTU)
	}
	if port.CheckNumber(port.FieldMaxMACs, s.perPort) != nil { // the range of a port's max_macs
		return o, badFlag("max-macs-per-port", "invalid --max-macs-per-port %d: use 0-%d (0: ports learn no MACs unless their max_macs says so)", s.perPort, port.MaxLearnedMACs)
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"max-macs-per-vlan", s.perVLAN}, {"fdb-max", s.fdbMax}} {
		if f.v < 1 || f.v > port.MaxLearnedMACs {
			return o, badFlag(f.name, "invalid --%s %d: use 1-%d", f.name, f.v, port.MaxLearnedMACs)
		}
	}
	o.FDB = datapath.FDBLimits{PerPort: s.perPort, PerVLAN: s.perVLAN, Total: s.fdbMax}
	if s.perPort == 0 {
		o.FDB.PerPort = datapath.NoMACs
	}
	switch s.prio {
	case "rt":
		o.Priority = datapath.Priority{RealTime: 1}
	case "nice":
		o.Priority = datapath.Priority{Nice: -10}
	case "normal":
	default:
		return o, badFlag("datapath-priority", "invalid --datapath-priority %q: use rt, nice or normal", s.prio)
	}
	if err := rxwait.CheckBudget(o.BusyPoll); err != nil {
		return o, badFlag("busy-poll", "invalid --busy-poll: %v", err)
	}
	if o.Libvirt != "" {
		if _, err := events.ParseURI(o.Libvirt); err != nil {
			return o, badFlag("libvirt", "invalid --libvirt: %v", err)
		}
	}
	if o.Uplink == "" {
		msg := "--uplink IF is required (the NIC facing the adjacent bridge)"
		if s.config != "" {
			msg = fmt.Sprintf("--uplink IF is required (the NIC facing the adjacent bridge; or uplink = IF in %s)", s.config)
		}
		return o, badFlag("uplink", "%s", msg)
	}
	if s.uplinkWait < 0 || s.uplinkWait > time.Hour {
		return o, badFlag("uplink-wait", "invalid --uplink-wait %v: use 0 (do not wait) to 1h", s.uplinkWait)
	}
	o.UplinkWait = s.uplinkWait
	if s.group != "" {
		gid, err := lookupGroup(s.group)
		if err != nil {
			return o, badFlag("socket-group", "invalid --socket-group: %v", err)
		}
		o.SocketGroup = &gid
	}
	return o, nil
}
