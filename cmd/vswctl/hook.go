package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/libvirt"
)

// libvirtHookCmd is the entry point libvirt runs as /etc/libvirt/hooks/qemu
// (DOMAIN OPERATION SUBOP EXTRA, domain XML on stdin): at "start begin"
// (and "reconnect begin") it adds a port for each NIC that the domain's
// metadata describes (pkg/libvirt), on the tap libvirt just created; at
// "release end" it deletes them. Every other call is ignored. A failure at
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
				return nil
			}
			dom, err := libvirt.ParseDomain(cmd.InOrStdin())
			if err != nil {
				return err
			}
			bs, err := dom.Bindings()
			if err != nil {
				return err
			}
			for _, b := range bs {
				if act == libvirt.Remove {
					err = a.hookRemove(cmd, dom.Name, b)
				} else {
					err = a.hookConfigure(cmd, call, dom.Name, b)
				}
				if err != nil {
					return err
				}
			}
			return nil
		},
	}
}

// hookConfigure adds the port of binding b. At "start begin" a port of the
// same name is a leftover of an earlier VM on a recycled tap name and is
// replaced; at "reconnect begin" (libvirtd restarted, the VM runs) it is
// the VM's own and is kept.
func (a *app) hookConfigure(cmd *cobra.Command, call libvirt.HookCall, domain string, b libvirt.Binding) error {
	spec := api.PortSpec{Name: b.Tap, VLAN: b.Port.VLAN, Trunk: b.Port.Trunk, NativeVLAN: b.Port.NativeVLAN,
		PCP: b.Port.PCP, SVID: b.Port.SVID, MACs: &[]string{b.Port.MAC.String()}}
	c := a.api()
	p, err := c.AddPort(cmd.Context(), spec)
	if api.CodeOf(err) == api.CodeAlreadyExists {
		if call.Op == "reconnect" {
			return nil
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

// hookRemove deletes the port of binding b (gone already is fine).
func (a *app) hookRemove(cmd *cobra.Command, domain string, b libvirt.Binding) error {
	err := a.api().DeletePort(cmd.Context(), b.Tap)
	if err != nil && api.CodeOf(err) != api.CodeNotFound {
		return fmt.Errorf("domain %s: delete port %s: %w", domain, b.Tap, err)
	}
	fmt.Fprintf(a.stdout, "domain %s: port %s deleted\n", domain, strings.TrimSpace(b.Tap))
	return nil
}
