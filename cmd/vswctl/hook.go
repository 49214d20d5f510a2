package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vswitch/vswitch/internal/libvirt"
	"github.com/vswitch/vswitch/pkg/api"
)

// libvirtHookCmd is the entry point libvirt runs as /etc/libvirt/hooks/qemu
// (DOMAIN OPERATION SUBOP EXTRA, domain XML on stdin): at "start begin"
// (and "reconnect begin") it adds a port for each NIC that the domain's
// metadata describes (internal/libvirt), on the tap libvirt just created,
// recording the domain's UUID as the port's owner; at "stopped end" and
// "release end" it deletes the ports the domain owns. Every other call is ignored. A failure at
// "start begin" exits 1 with one line on stderr, and libvirt then refuses
// to start the VM with that message: a VM whose port cannot be set up would
// start cut off from its VLAN.
func (a *app) libvirtHookCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "libvirt-hook DOMAIN OPERATION SUBOP [EXTRA]",
		Short: "Entry point for libvirt's qemu hook (/etc/libvirt/hooks/qemu)",
		Long: `Entry point for libvirt's qemu hook: link /etc/libvirt/hooks/qemu to a script running
"vswctl libvirt-hook \"$@\"". NICs are <interface type='ethernet'> and their ports are described in the
domain's <metadata>, matched by MAC:

  <vsw:ports xmlns:vsw="urn:vswitch:libvirt:1">
    <vsw:port mac="52:54:00:12:34:56" vlan="100" pcp="3"/>
  </vsw:ports>

Attributes: mac, vlan | trunk [native-vlan], pcp, svid.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			call, err := libvirt.ParseHookArgs(args)
			if err != nil {
				return &usageError{msg: err.Error(), cmd: "vswctl libvirt-hook"}
			}
			act := call.Action()
			if act == libvirt.Ignore {
				// Read what libvirt writes so it never blocks on a full
				// pipe; print nothing (for "migrate" and "restore"
				// libvirt takes our stdout as the new domain XML).
				_, _ = io.Copy(io.Discard, cmd.InOrStdin())
				return nil
			}
			err = a.hook(cmd, call, act)
			if err != nil && call.BestEffort() {
				// reconnect: a failure would make libvirt kill the
				// running VM; stopped/release: libvirt ignores it.
				fmt.Fprintf(a.stderr, "vswctl: %s (ignored: libvirt %s %s)\n", oneLine(err.Error()), call.Op, call.SubOp)
				return nil
			}
			return err
		},
	}
}

// hookArgv returns args with "--" inserted right after the libvirt-hook
// subcommand, so that what libvirt passes after it is taken as the hook's
// arguments and never as flags: a domain named "-h" would otherwise print
// help and start the VM without its ports, and one named "--socket=x"
// would talk to another socket and take "start" for the domain's name.
// vswctl's own flags go before the subcommand, as the hook script writes
// them (root's flags say which of them take a value). A domain named "--"
// is a domain too; "libvirt-hook --help" (or -h) alone, which libvirt
// never passes (it always gives three or four arguments), asks for help.
func hookArgv(root *cobra.Command, args []string) []string {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return args
		case strings.HasPrefix(a, "-"):
			name := strings.TrimLeft(a, "-")
			if strings.Contains(name, "=") || !strings.HasPrefix(a, "--") && len(name) > 1 {
				continue // the value is attached: --socket=PATH, -ojson
			}
			f := root.PersistentFlags().Lookup(name)
			if f == nil && len(name) == 1 {
				f = root.PersistentFlags().ShorthandLookup(name)
			}
			if f != nil && f.NoOptDefVal == "" {
				i++ // its value is the next argument
			}
		case a == "libvirt-hook":
			rest := args[i+1:]
			if len(rest) == 0 || len(rest) == 1 && (rest[0] == "-h" || rest[0] == "--help") {
				return args
			}
			return append(append(slices.Clip(args[:i+1]), "--"), rest...)
		default:
			return args // another subcommand
		}
	}
	return args
}

func (a *app) hook(cmd *cobra.Command, call libvirt.HookCall, act libvirt.Action) error {
	dom, err := libvirt.ParseDomain(cmd.InOrStdin())
	if err != nil {
		return err
	}
	if act == libvirt.Remove {
		return a.hookRemove(cmd, dom)
	}
	bs, err := dom.Bindings()
	if err != nil {
		return err
	}
	for _, b := range bs {
		if err := a.hookConfigure(cmd, call, dom.Name, b); err != nil {
			return err
		}
	}
	return nil
}

// hookConfigure adds the port of binding b. At "start begin" a port of the
// same name is a leftover of an earlier VM on a recycled tap name and is
// replaced; at "reconnect begin" (libvirtd restarted, the VM runs) it is
// the VM's own and is kept.
func (a *app) hookConfigure(cmd *cobra.Command, call libvirt.HookCall, domain string, b libvirt.Binding) error {
	spec := b.Spec() // checked by the port rules in Bindings
	c := a.api()
	p, err := c.AddPort(cmd.Context(), spec)
	if api.CodeOf(err) == api.CodeAlreadyExists {
		if call.Op == "reconnect" {
			return a.hookCheck(cmd, domain, spec)
		}
		if err = c.DeletePort(cmd.Context(), b.Tap); err == nil {
			p, err = c.AddPort(cmd.Context(), spec)
		}
	}
	if err != nil {
		return fmt.Errorf("domain %s: port %s: %w", domain, b.Tap, err)
	}
	fmt.Fprintf(a.stdout, "domain %s: port %s: %s\n", domain, p.Name, describePort(p))
	return nil
}

// hookRemove deletes the domain's ports: those its hook added (the owner
// is the domain's UUID) that carry one of its MACs, found in the port list
// because by now libvirt may have deleted the taps and dropped their names
// from the XML. A port of another domain that registered the same MAC, or
// one added by vswctl (no owner), is left alone.
func (a *app) hookRemove(cmd *cobra.Command, dom *libvirt.Domain) error {
	if len(dom.Ports) == 0 {
		return nil
	}
	c := a.api()
	ports, err := c.ListPorts(cmd.Context())
	if err != nil {
		return fmt.Errorf("domain %s: list ports: %w", dom.Name, err)
	}
	for _, p := range dom.Owned(ports) {
		if err := c.DeletePort(cmd.Context(), p.Name); err != nil && api.CodeOf(err) != api.CodeNotFound {
			return fmt.Errorf("domain %s: delete port %s: %w", dom.Name, p.Name, err)
		}
		fmt.Fprintf(a.stdout, "domain %s: port %s deleted\n", dom.Name, p.Name)
	}
	return nil
}

// hookCheck compares a running VM's existing port with its description
// (at reconnect) and says so on stderr when they differ; it changes
// nothing, the VM is running, except that a port matching the description
// but without an owner (added by a hook of an earlier version) gets the
// domain as its owner, so that it is removed when the domain stops.
func (a *app) hookCheck(cmd *cobra.Command, domain string, spec api.PortSpec) error {
	c := a.api()
	p, err := c.GetPort(cmd.Context(), spec.Name)
	if err != nil {
		return fmt.Errorf("domain %s: port %s: %w", domain, spec.Name, err)
	}
	same := func(want *int, got int) bool { return want == nil || *want == got }
	if !same(spec.VLAN, p.VLAN) || !same(spec.PCP, p.PCP) || !same(spec.SVID, p.SVID) || !same(spec.NativeVLAN, p.NativeVLAN) ||
		len(p.MACs) != 1 || !strings.EqualFold(p.MACs[0], (*spec.MACs)[0]) || p.Owner != "" && p.Owner != *spec.Owner {
		fmt.Fprintf(a.stderr, "vswctl: domain %s: port %s differs from the domain's description (%s); left as it is (vswctl set-port to change it)\n",
			domain, spec.Name, describePort(p))
		return nil
	}
	if p.Owner == "" {
		if _, err := c.UpdatePort(cmd.Context(), spec.Name, api.PortSpec{Owner: spec.Owner}); err != nil {
			return fmt.Errorf("domain %s: port %s: record the owner: %w", domain, spec.Name, err)
		}
	}
	return nil
}
