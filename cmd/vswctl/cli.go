package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/vswitch/vswitch/internal/capture"
	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/port"
)

// app is one invocation's state: global flags, output streams, the client.
type app struct {
	stdout, stderr io.Writer
	socket         string
	output         string
	client         *api.Client
	// captureLimit bounds concurrent captures (zero: the host-wide
	// default, capture.MaxSessions).
	captureLimit capture.Limit
}

func (a *app) newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "vswctl",
		Short: "Control vswitchd, the 802.1Qbg VEPA virtual switch",
		Long: `vswctl controls vswitchd, the 802.1Qbg VEPA virtual switch, through its API socket.

The socket is --socket, else $VSWITCHD_SOCKET, else ` + api.DefaultSocket + `.
Exit status: 0 ok, 1 error (the message says what to do), 2 usage error.`,
		Example: `  vswctl add-port vnet1 --vlan 100 --mac 52:54:00:12:34:56
  vswctl add-port vnet2 --trunk 10,20-30 --native-vlan 10
  vswctl set-port vnet1 --pcp 5
  vswctl -o json list-ports`,
		SilenceErrors: true,
		SilenceUsage:  true,
		// Runnable so that an unknown command reaches RunE (exit 2) instead
		// of cobra printing help and exiting 0.
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef(cmd, "missing command")
			}
			msg := fmt.Sprintf("unknown command %q", args[0])
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += " (did you mean " + strings.Join(s, " or ") + "?)"
			}
			return usagef(cmd, "%s", msg)
		},
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			switch a.output {
			case "table", "json":
			default:
				return fmt.Errorf("invalid output format %q: use -o table or -o json", a.output)
			}
			return nil
		},
	}
	root.SuggestionsMinimumDistance = 2
	// The root runs only to report unknown commands: do not advertise
	// "vswctl [flags]" as a usage of its own.
	root.SetUsageTemplate(strings.Replace(root.UsageTemplate(),
		"{{if .Runnable}}", "{{if and .Runnable (not .HasAvailableSubCommands)}}", 1))
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usagef(cmd, "%v", err)
	})
	pf := root.PersistentFlags()
	pf.StringVar(&a.socket, "socket", api.SocketFromEnv(), "vswitchd API socket `PATH` (env VSWITCHD_SOCKET)")
	pf.StringVarP(&a.output, "output", "o", "table", "output `FORMAT`: table or json")
	versionFlag(root)

	root.AddCommand(
		a.statusCmd(),
		a.addPortCmd(),
		a.setPortCmd(),
		a.delPortCmd(),
		a.listPortsCmd(),
		a.statsCmd(),
		a.fdbCmd(),
		a.vsisCmd(),
		a.lldpCmd(),
		a.captureCmd(),
		a.libvirtHookCmd(),
		a.versionCmd(),
		a.manCmd(),
	)
	a.completions(root)
	return root
}

// args validators that report usage errors (exit 2).

func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) < n:
			return usagef(cmd, "%s needs %s", cmd.Name(), what)
		case len(args) > n:
			return usagef(cmd, "%s takes %s, got extra argument %q", cmd.Name(), what, args[n])
		}
		return nil
	}
}

func maxArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > n {
			return usagef(cmd, "%s takes at most %s, got extra argument %q", cmd.Name(), what, args[n])
		}
		return nil
	}
}

func (a *app) api() *api.Client {
	if a.client == nil {
		a.client = api.NewClient(a.socket)
	}
	return a.client
}

// call sends one request. In json mode it prints the daemon's answer
// unchanged (indented) and returns printed=true; otherwise it decodes the
// answer into out for the table renderer.
func (a *app) call(ctx context.Context, method, path string, in, out any) (printed bool, err error) {
	var raw json.RawMessage
	if err := a.api().Do(ctx, method, path, in, &raw); err != nil {
		return false, err
	}
	if a.output == "json" {
		if len(raw) == 0 {
			return true, nil
		}
		var buf bytes.Buffer
		if err := json.Indent(&buf, raw, "", "  "); err != nil {
			return false, fmt.Errorf("vswitchd sent invalid JSON for %s %s: %w", method, path, err)
		}
		buf.WriteByte('\n')
		_, err := a.stdout.Write(buf.Bytes())
		return true, err
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return false, fmt.Errorf("decode vswitchd's answer to %s %s: %w", method, path, err)
		}
	}
	return false, nil
}

// portError rewrites the daemon's "no such port" error into the CLI's
// wording, which names the vswctl command that helps.
func portError(name string, err error) error {
	if api.CodeOf(err) == api.CodeNotFound {
		return port.NotFound(name)
	}
	return err
}

// addPortError does the same for add-port's "duplicate port" error.
func addPortError(name string, err error) error {
	if api.CodeOf(err) == api.CodeAlreadyExists {
		return port.Exists(name)
	}
	return err
}

func (a *app) statusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the uplink, forwarding mode, datapath and reflective-relay state",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var st api.Status
			printed, err := a.call(cmd.Context(), http.MethodGet, "/v1/status", nil, &st)
			if err != nil || printed {
				return err
			}
			return writeStatus(a.stdout, st)
		},
	}
}

// portFlags are the flags add-port and set-port share. Numeric values are
// strings so that vswctl, not pflag, reports bad values (exit 1).
type portFlags struct {
	vlan, trunk, native, svid, pcp string
	maxMACs                        string
	macs                           []string
	flood                          bool
	clearMACs                      bool
	// the VSI identity and migration state (802.1Qbg VDP)
	vsiType, vsiTypeVersion, vsiManager, instanceID, migration string
	vsiGroup                                                   string
}

func (pf *portFlags) register(fs *pflag.FlagSet, set bool) {
	fs.StringVar(&pf.vlan, "vlan", "", "access port: tag the port's frames with VLAN `VID` (1-4094; 0: the bridge assigns it over VDP, and the port waits for it)")
	fs.StringVar(&pf.trunk, "trunk", "", "trunk port: allowed VLAN IDs `VIDS`, e.g. 10,20-30")
	fs.StringVar(&pf.native, "native-vlan", "", "trunk port: `VID` for untagged frames (0 = drop them)")
	fs.StringSliceVar(&pf.macs, "mac", nil, "`MAC` the VM may send from (repeatable; then only these are allowed)")
	fs.StringVar(&pf.pcp, "pcp", "", "802.1p priority `N` (0-7) of the port's frames")
	fs.StringVar(&pf.svid, "svid", "", "S-channel: outer 802.1ad S-VLAN `VID` (1-4094, 0 = none)")
	fs.BoolVar(&pf.flood, "flood", false, "flood unknown unicast to this port")
	maxHelp := "learn at most `N` source MACs (0: only registered MACs pass; more are dropped as mac_limit; default: vswitchd --max-macs-per-port)"
	if set {
		maxHelp += `; "default" goes back to the daemon's`
	}
	fs.StringVar(&pf.maxMACs, "max-macs", "", maxHelp)
	fs.StringVar(&pf.vsiType, "vsi-type", "", "VDP: the VM's VSI type `ID` (0-16777215), the bridge's policy for it")
	fs.StringVar(&pf.vsiTypeVersion, "vsi-type-version", "", "VDP: the VSI type `VERSION` (0-255)")
	fs.StringVar(&pf.vsiManager, "vsi-manager", "", "VDP: the VSI manager `ID`: 0-255 (libvirt's managerid) or a name of 2-16 characters (\"\": vswitchd)")
	fs.StringVar(&pf.instanceID, "instance-id", "", "VDP: the VM's VSI instance `UUID` (\"\": derived from the owner's UUID and each MAC)")
	fs.StringVar(&pf.vsiGroup, "vsi-group", "", "VDP: the VSIs' group `ID` (1-4294967295, 0 = none): filter formats group+VID, group+MAC+VID; the bridge maps it to the VID")
	fs.StringVar(&pf.migration, "migration", "", "live migration `STATE`: incoming (add-port: VSIs pre-associated until the VM's first frame), outgoing (VSIs de-associated, S bit) or none")
	if set {
		fs.BoolVar(&pf.clearMACs, "clear-macs", false, "remove every registered MAC (the port may send from any MAC)")
	}
}

// spec validates the flags and builds the request. add selects add-port
// rules. Each value is parsed by package port, and the request is checked
// as vswitchd will check it (api.PortSpec.Apply for a new port, Check for a
// change), so a bad value never reaches the daemon; the messages about
// flags that go together are vswctl's own.
func (pf *portFlags) spec(cmd *cobra.Command, name string, add bool) (api.PortSpec, error) {
	s := api.PortSpec{}
	if add {
		s.Name = name
	}
	fl := cmd.Flags()
	changed := func(f string) bool { return fl.Changed(f) }
	if changed("vlan") && changed("trunk") {
		return s, fmt.Errorf("use either --vlan VID (access port) or --trunk VIDS (trunk port), not both")
	}
	if add && !changed("vlan") && !changed("trunk") {
		return s, fmt.Errorf("add-port %s needs --vlan VID (access port) or --trunk VIDS (trunk port)", name)
	}
	if changed("vlan") {
		vid, fromBridge, err := port.ParseAccessVLAN(pf.vlan)
		if err != nil {
			return s, err
		}
		v := int(vid)
		s.VLAN = &v
		if fromBridge {
			s.VLANFromBridge = &fromBridge
		}
		if !add {
			// Turning a trunk port into an access port clears its VID set.
			empty := ""
			s.Trunk = &empty
		}
	}
	if changed("trunk") {
		set, err := port.ParseTrunk(pf.trunk)
		if err != nil {
			return s, err
		}
		t := set.String()
		s.Trunk = &t
		if !add {
			// Turning an access port into a trunk port clears its VID.
			zero := 0
			s.VLAN = &zero
		}
	}
	if changed("native-vlan") {
		if add && !changed("trunk") {
			return s, fmt.Errorf("--native-vlan only applies to trunk ports: add --trunk VIDS, or drop --native-vlan")
		}
		v, err := port.ParseNumber(port.FieldNativeVLAN, pf.native)
		if err != nil {
			return s, err
		}
		s.NativeVLAN = &v
	}
	if changed("svid") {
		v, err := port.ParseNumber(port.FieldSVID, pf.svid)
		if err != nil {
			return s, err
		}
		s.SVID = &v
	}
	if changed("vsi-group") {
		g, err := port.ParseVSIGroup(pf.vsiGroup)
		if err != nil {
			return s, err
		}
		n := int64(g)
		s.VSIGroup = &n
	}
	if changed("pcp") {
		v, err := port.ParseNumber(port.FieldPCP, pf.pcp)
		if err != nil {
			return s, err
		}
		s.PCP = &v
	}
	if changed("mac") && pf.clearMACs {
		return s, fmt.Errorf("use either --mac or --clear-macs, not both")
	}
	if changed("mac") {
		hws, err := port.ParseMACs(pf.macs)
		if err != nil {
			return s, err
		}
		macs := make([]string, 0, len(hws))
		for _, m := range hws {
			macs = append(macs, m.String())
		}
		s.MACs = &macs
	}
	if pf.clearMACs {
		none := []string{}
		s.MACs = &none
	}
	if changed("flood") {
		f := pf.flood
		s.Flood = &f
	}
	if changed("max-macs") {
		n := api.MaxMACsDefault
		if strings.TrimSpace(pf.maxMACs) != "default" || add {
			v, err := port.ParseNumber(port.FieldMaxMACs, pf.maxMACs)
			if err != nil {
				return s, err
			}
			n = v
		}
		s.MaxMACs = &n
	}
	for _, f := range []struct {
		flag, v string
		field   port.Field
		dst     **int
	}{{"vsi-type", pf.vsiType, port.FieldVSIType, &s.VSIType}, {"vsi-type-version", pf.vsiTypeVersion, port.FieldVSITypeVersion, &s.VSITypeVersion}} {
		if changed(f.flag) {
			v, err := port.ParseNumber(f.field, f.v)
			if err != nil {
				return s, err
			}
			*f.dst = &v
		}
	}
	for _, f := range []struct {
		flag, v string
		parse   func(string) (string, error)
		dst     **string
	}{{"vsi-manager", pf.vsiManager, port.ParseVSIManager, &s.VSIManager}, {"instance-id", pf.instanceID, port.ParseInstanceID, &s.InstanceID},
		{"migration", pf.migration, port.ParseMigration, &s.Migration}} {
		if changed(f.flag) {
			v, err := f.parse(f.v)
			if err != nil {
				return s, err
			}
			*f.dst = &v
		}
	}
	if !add && s == (api.PortSpec{}) {
		return s, fmt.Errorf("set-port %s: nothing to change: give at least one of --vlan, --trunk, --native-vlan, --mac, --clear-macs, --pcp, --svid, --flood, --max-macs, --vsi-type, --vsi-type-version, --vsi-manager, --instance-id, --vsi-group, --migration", name)
	}
	if add {
		_, err := s.Apply(port.Config{})
		return s, err
	}
	return s, s.Check()
}

func (a *app) addPortCmd() *cobra.Command {
	var pf portFlags
	cmd := &cobra.Command{
		Use:   "add-port IF (--vlan VID | --trunk VIDS) [flags]",
		Short: "Add a VM port (the tap may not exist yet)",
		Long: `Add a VM port. An access port (--vlan) tags every frame with its VLAN; a trunk
port (--trunk) passes tagged frames of the allowed VLANs. The tap may not exist yet:
the port is then "absent" and is attached when the tap appears.`,
		Example: `  vswctl add-port vnet1 --vlan 100 --mac 52:54:00:12:34:56 --pcp 3
  vswctl add-port vnet2 --trunk 10,20-30 --native-vlan 10
  vswctl add-port vnet3 --vlan 100 --mac 52:54:00:12:34:58 --vsi-type 1193047 --vsi-type-version 2 --vsi-manager 12`,
		Args: exactArgs(1, "one interface name (IF)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := port.CheckName(name); err != nil {
				return err
			}
			spec, err := pf.spec(cmd, name, true)
			if err != nil {
				return err
			}
			var p api.Port
			printed, err := a.call(cmd.Context(), http.MethodPost, "/v1/ports", spec, &p)
			if err != nil {
				return addPortError(name, err)
			}
			if !printed {
				fmt.Fprintf(a.stdout, "added port %s: %s\n", p.Name, describePort(p))
			}
			return nil
		},
	}
	pf.register(cmd.Flags(), false)
	return cmd
}

func (a *app) setPortCmd() *cobra.Command {
	var pf portFlags
	cmd := &cobra.Command{
		Use:   "set-port IF [flags]",
		Short: "Change a port; flags not given are left as they are",
		Example: `  vswctl set-port vnet1 --vlan 200
  vswctl set-port vnet1 --mac 52:54:00:12:34:56 --mac 52:54:00:12:34:57
  vswctl set-port vnet2 --trunk 10-20 --native-vlan 0
  vswctl set-port vnet1 --vsi-type 1193047 --instance-id 0b6d9a3c-5e55-4f4e-9f11-2f0d5a6b7c8d`,
		Args: exactArgs(1, "one interface name (IF)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := port.CheckName(name); err != nil {
				return err
			}
			spec, err := pf.spec(cmd, name, false)
			if err != nil {
				return err
			}
			var p api.Port
			printed, err := a.call(cmd.Context(), http.MethodPatch, api.PortPath(name), spec, &p)
			if err != nil {
				return portError(name, err)
			}
			if !printed {
				fmt.Fprintf(a.stdout, "updated port %s: %s\n", p.Name, describePort(p))
			}
			return nil
		},
	}
	pf.register(cmd.Flags(), true)
	return cmd
}

func (a *app) delPortCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "del-port IF",
		Short: "Remove a port",
		Args:  exactArgs(1, "one interface name (IF)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := port.CheckName(name); err != nil {
				return err
			}
			printed, err := a.call(cmd.Context(), http.MethodDelete, api.PortPath(name), nil, nil)
			if err != nil {
				return portError(name, err)
			}
			if !printed {
				fmt.Fprintf(a.stdout, "deleted port %s\n", name)
			}
			return nil
		},
	}
}

func (a *app) listPortsCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "list-ports",
		Aliases: []string{"ports"},
		Short:   "List ports with their VLANs, MACs, state and counters",
		Args:    exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var ps []api.Port
			printed, err := a.call(cmd.Context(), http.MethodGet, "/v1/ports", nil, &ps)
			if err != nil || printed {
				return err
			}
			return writePorts(a.stdout, ps)
		},
	}
}

func (a *app) statsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "stats [IF]",
		Short: "Show packet counters and drops per reason (all ports, or one)",
		Args:  maxArgs(1, "one interface name (IF)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				name := args[0]
				if err := port.CheckName(name); err != nil {
					return err
				}
				var p api.Port
				printed, err := a.call(cmd.Context(), http.MethodGet, api.PortPath(name), nil, &p)
				if err != nil {
					return portError(name, err)
				}
				if printed {
					return nil
				}
				return writePortStats(a.stdout, p)
			}
			var st api.Stats
			printed, err := a.call(cmd.Context(), http.MethodGet, "/v1/stats", nil, &st)
			if err != nil || printed {
				return err
			}
			return writeStats(a.stdout, st)
		},
	}
}

func (a *app) vsisCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "vsis",
		Short: "Show the VSIs registered with the adjacent bridge (802.1Qbg VDP)",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var vs []api.VSI
			printed, err := a.call(cmd.Context(), http.MethodGet, "/v1/vsis", nil, &vs)
			if err != nil || printed {
				return err
			}
			return writeVSIs(a.stdout, vs)
		},
	}
}

func (a *app) fdbCmd() *cobra.Command {
	var vid string
	cmd := &cobra.Command{
		Use:   "fdb [--vlan VID]",
		Short: "Show the forwarding database (learned and registered MACs)",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			v := 0
			if cmd.Flags().Changed("vlan") {
				var err error
				if v, err = port.ParseNumber(port.FieldVLAN, vid); err != nil {
					return err
				}
			}
			var es []api.FDBEntry
			printed, err := a.call(cmd.Context(), http.MethodGet, api.FDBPath(v), nil, &es)
			if err != nil || printed {
				return err
			}
			return writeFDB(a.stdout, es)
		},
	}
	cmd.Flags().StringVar(&vid, "vlan", "", "only entries of VLAN `VID` (1-4094)")
	return cmd
}
