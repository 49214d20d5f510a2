package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/port"
)

// completeTimeout bounds how long a completion waits for vswitchd: a
// shell's Tab must never hang on a daemon that does not answer.
const completeTimeout = 2 * time.Second

// completions wires shell completion into the command tree: `vswctl
// completion bash|zsh|fish|powershell` (cobra's) writes the script, which
// calls the hidden `vswctl __complete ARGS...` on each Tab. Port-name
// arguments complete from the daemon's ports (the socket is --socket or
// $VSWITCHD_SOCKET, as for every command), capture's interface from the
// ports and the uplink, and flags with a closed set of values from that
// set. When the daemon cannot be reached a completion quietly offers
// nothing (and never file names where an interface is wanted).
func (a *app) completions(root *cobra.Command) {
	byName := map[string]*cobra.Command{}
	for _, c := range root.Commands() {
		byName[c.Name()] = c
		// Every command's default: no file names (none takes a file as an
		// argument). Commands below set their own.
		if c.ValidArgsFunction == nil {
			c.ValidArgsFunction = cobra.NoFileCompletions
		}
	}
	onePort := func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return a.completePorts(cmd.Context(), toComplete, false), cobra.ShellCompDirectiveNoFileComp
	}
	for _, name := range []string{"del-port", "set-port", "stats"} {
		if c := byName[name]; c != nil {
			c.ValidArgsFunction = onePort
		}
	}
	if c := byName["capture"]; c != nil {
		c.ValidArgsFunction = func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return a.completePorts(cmd.Context(), toComplete, true), cobra.ShellCompDirectiveNoFileComp
		}
	}
	// Flag values.
	fixed := func(vals ...string) cobra.CompletionFunc {
		return func(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			var out []cobra.Completion
			for _, v := range vals {
				if strings.HasPrefix(v, toComplete) {
					out = append(out, v)
				}
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		}
	}
	register := func(c *cobra.Command, flag string, f cobra.CompletionFunc) {
		if c != nil && (c.Flags().Lookup(flag) != nil || c.PersistentFlags().Lookup(flag) != nil) {
			_ = c.RegisterFlagCompletionFunc(flag, f) // only fails for an unknown or twice-registered flag
		}
	}
	register(root, "output", fixed("table", "json"))
	_ = root.RegisterFlagCompletionFunc("socket", func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return []cobra.Completion{"sock"}, cobra.ShellCompDirectiveFilterFileExt
	})
	vlans := func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return a.completeVLANs(cmd.Context(), toComplete), cobra.ShellCompDirectiveNoFileComp
	}
	for _, name := range []string{"add-port", "set-port"} {
		c := byName[name]
		register(c, "vlan", vlans)
		register(c, "native-vlan", vlans)
		register(c, "migration", fixed(port.MigrationIncoming, port.MigrationOutgoing, "none"))
		register(c, "pcp", fixed("0", "1", "2", "3", "4", "5", "6", "7"))
		register(c, "max-macs", fixed("default"))
	}
	register(byName["fdb"], "vlan", vlans)
}

// completePorts lists the daemon's ports whose names start with prefix,
// each with what it is (its VLANs and state) as the description; with
// uplink, the uplink too. Nothing when the daemon does not answer.
func (a *app) completePorts(ctx context.Context, prefix string, uplink bool) []cobra.Completion {
	ctx, cancel := context.WithTimeout(ctx, completeTimeout)
	defer cancel()
	ps, err := a.api().ListPorts(ctx)
	if err != nil {
		cobra.CompDebugln("list ports: "+err.Error(), false)
		return nil
	}
	var out []cobra.Completion
	for _, p := range ps {
		if strings.HasPrefix(p.Name, prefix) {
			out = append(out, cobra.CompletionWithDesc(p.Name, portSummary(p)))
		}
	}
	if uplink {
		if st, err := a.api().Status(ctx); err == nil && st.Uplink != "" && strings.HasPrefix(st.Uplink, prefix) {
			out = append(out, cobra.CompletionWithDesc(st.Uplink, "uplink, "+st.UplinkState))
		}
	}
	return out
}

// portSummary is a port's completion description: "vlan 100, up".
func portSummary(p api.Port) string {
	s := fmt.Sprintf("vlan %d", p.VLAN)
	if len(p.Trunk) > 0 {
		s = "trunk " + vidList(p.Trunk)
	}
	if p.SVID != 0 {
		s += fmt.Sprintf(" svid %d", p.SVID)
	}
	return s + ", " + p.State
}

// completeVLANs offers the VLANs the daemon's ports use (access VLANs and
// trunks' native VLANs), in order; any VID may be typed.
func (a *app) completeVLANs(ctx context.Context, prefix string) []cobra.Completion {
	ctx, cancel := context.WithTimeout(ctx, completeTimeout)
	defer cancel()
	ps, err := a.api().ListPorts(ctx)
	if err != nil {
		cobra.CompDebugln("list ports: "+err.Error(), false)
		return nil
	}
	var vids []int
	for _, p := range ps {
		for _, v := range []int{p.VLAN, p.NativeVLAN} {
			if v != 0 && !slices.Contains(vids, v) {
				vids = append(vids, v)
			}
		}
	}
	slices.Sort(vids)
	var out []cobra.Completion
	for _, v := range vids {
		if s := strconv.Itoa(v); strings.HasPrefix(s, prefix) {
			out = append(out, s)
		}
	}
	return out
}
