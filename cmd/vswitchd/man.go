package main

import (
	"strings"

	"github.com/vswitch/vswitch/internal/manpage"
	"github.com/vswitch/vswitch/internal/store"
	"github.com/vswitch/vswitch/pkg/api"
)

// manPage is vswitchd(8), which `vswitchd --man` writes for `make man`:
// the synopsis and the flags as --help shows them (FlagSet), and what
// --help does not say: the config file, signals, environment, files and
// exit status.
func manPage() *manpage.Page {
	var syn []string
	for _, l := range strings.Split(strings.TrimSpace(synopsis), "\n") {
		l = strings.TrimPrefix(strings.TrimSpace(l), "usage: ")
		l, _, _ = strings.Cut(l, "   (") // the offline line's note: in the description
		syn = append(syn, strings.TrimSpace(l))
	}
	return &manpage.Page{
		Header:      manpage.BuildHeader(),
		Name:        "vswitchd",
		Section:     "8",
		Title:       "the vswitch daemon, an IEEE 802.1Qbg (VEPA) virtual switch",
		Synopsis:    syn,
		Description: manDescription,
		Options:     []manpage.Options{{Title: "Options", Flags: FlagSet()}},
		Sections: []manpage.Section{
			{Title: "Configuration file", Text: manConfig},
			{Title: "Signals", Items: []manpage.Item{
				{Tag: "SIGTERM, SIGINT", Text: "Stop gracefully: the ports' state is already on disk, the uplink's offloads are restored, systemd hears STOPPING=1. A second signal ends vswitchd at once."},
			}},
			{Title: "Environment", Items: []manpage.Item{
				{Tag: api.SocketEnv, Text: "The default of --socket (the command line and the configuration file win)."},
				{Tag: "NOTIFY_SOCKET, WATCHDOG_USEC", Text: "Set by systemd (Type=notify, WatchdogSec=): vswitchd sends READY=1 once the API listens and the stored ports are back, STOPPING=1 when it stops, and WATCHDOG=1 at half the interval while its control plane can take a change."},
				{Tag: "JOURNAL_STREAM", Text: "Set by systemd when stderr is the journal: --log-format auto then writes each record with its syslog priority and no timestamp."},
				{Tag: "GOMAXPROCS", Text: "The Go runtime's processors; by default vswitchd sets one per CPU plus one per datapath worker."},
			}},
			{Title: "Files", Items: []manpage.Item{
				{Tag: defaultConfig, Text: "The configuration file (--config); it may be absent."},
				{Tag: store.DefaultPath, Text: "The state file (--state): every port, written before the API answers; --check, --salvage and --drop-port work on it while vswitchd is stopped."},
				{Tag: api.DefaultSocket, Text: "The API socket (--socket), mode 0660: root and the members of --socket-group may use it (vswctl)."},
				{Tag: "/etc/libvirt/hooks/qemu.d/vswitch", Text: "libvirt's qemu hook, which adds and removes the ports of the domains whose metadata describes them (vswctl-libvirt-hook(1))."},
			}},
			{Title: "Exit status", Items: []manpage.Item{
				{Tag: "0", Text: "Stopped by a signal; --help, --version; --check found nothing wrong; an offline command succeeded."},
				{Tag: "1", Text: "Could not start or run (the uplink is missing or held by another vswitchd, the state file is damaged, ...), or --check found a problem: the reason is on stderr."},
				{Tag: "2", Text: "A bad flag or configuration file line (systemd does not restart vswitchd after it)."},
			}},
		},
		SeeAlso: []string{"vswctl(1)", "vswctl-libvirt-hook(1)", "systemd.service(5)", "lldpad(8)"},
	}
}

const manDescription = `vswitchd runs on each hypervisor. Every VM tap (vnetN) is a port mapped to a VLAN
(or an 802.1ad S-channel). Frames a VM sends are tagged in userspace and sent out of the uplink NIC,
facing the adjacent bridge; nothing is switched locally (VEPA): traffic between two VMs is hairpinned
by the bridge (reflective relay), so its ACLs and monitoring see everything. Frames from the uplink
are untagged and delivered to the right VMs. vswitchd asks the bridge for reflective relay (LLDP EVB
TLV) and switches locally while it is refused (VEB); it registers the VMs with the bridge (ECP/VDP).

The datapath is AF_PACKET or AF_XDP (--datapath, --port-datapath). Ports are added and changed through
a JSON API on a Unix socket, by vswctl(1), by libvirt's hook (vswctl libvirt-hook) and, with
--libvirt, by following libvirtd's domain events. Every change is kept in the state file, and a
restarted vswitchd comes back with every port. A port may be added before its tap exists and is
attached when the tap appears. Prometheus metrics are served with --metrics.

Flags are GNU style (--uplink eth1 or --uplink=eth1); the single-dash spelling of older versions is
still accepted. --check, --salvage and --drop-port work on the state file while vswitchd is stopped,
and exit.

Under systemd (vswitchd.service, Type=notify) it reports readiness and its status, logs in the
journal's form, and runs with the capabilities it needs only: CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF,
CAP_IPC_LOCK, CAP_SYS_NICE and CAP_CHOWN. README.md (in /usr/share/doc/vswitch) has the details.`

const manConfig = `vswitchd reads --config FILE (default ` + defaultConfig + `; the default file may be absent)
before it starts. Its settings are vswitchd's flags, by their long names, one per line, and pass
through the same checks:

  # /etc/vswitch/vswitchd.conf
  uplink = eth1
  socket-group = libvirt      # a comment may follow a value after a blank
  datapath afxdp              # '=' is optional
  libvirt = "qemu:///system"  # a value may be double-quoted

A flag on the command line wins over the file, and the file over the defaults. --check, --salvage,
--drop-port, --version and --config cannot be set there. A mistake stops vswitchd with exit status 2
and one line naming the file and the line.`
