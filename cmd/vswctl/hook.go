package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vswitch/vswitch/internal/libvirt"
	"github.com/vswitch/vswitch/internal/uuid"
	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/port"
	"github.com/vswitch/vswitch/pkg/vepa"
)

// libvirtStateEnv names libvirt's state directory of QEMU domains for the
// hook (default libvirt.DefaultStateDir), where it reads whether a stopped
// domain migrated away and whether a started one is migrating in.
const libvirtStateEnv = "VSWCTL_LIBVIRT_STATE_DIR"

// preassociateWait bounds how long "start begin" of an incoming migration
// waits for the bridge's answer to the pre-association, as libvirt waits
// 10 s for lldpad's answer for a macvtap NIC.
const preassociateWait = 10 * time.Second

// libvirtHookCmd is the entry point libvirt runs as /etc/libvirt/hooks/qemu
// (DOMAIN OPERATION SUBOP EXTRA, domain XML on stdin): at "start begin"
// (and "reconnect begin") it adds a port for each NIC that the domain's
// metadata describes (internal/libvirt), on the tap libvirt just created,
// recording the domain's UUID as the port's owner; at "stopped end" and
// "release end" it deletes the ports the domain owns. A failure at "start
// begin" exits 1 with one line on stderr, and libvirt then refuses to
// start the VM with that message: a VM whose port cannot be set up would
// start cut off from its VLAN.
//
// Live migration: "migrate begin" (the destination, before anything else)
// notes the domain as incoming; its "prepare begin" moves the note on when
// it is fresh (libvirt.IncomingMarks), and its "start begin" then adds the
// ports incoming, so that vswitchd pre-associates their VSIs, and waits
// for the bridge's answer: a refusal removes the ports and fails the
// start, which cancels the migration. "started begin" re-adds them
// plainly if libvirt's status says the domain is not migrating in.
// vswitchd associates the VSIs (M bit) when the VM sends its first frame
// here. On the source, the "stopped end" that ends a migration (libvirt's
// status of the domain says so, or EXTRA "migrated") turns each port
// outgoing (de-association with the S bit) before deleting it. Every other
// call is ignored.
func (a *app) libvirtHookCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "libvirt-hook DOMAIN OPERATION SUBOP [EXTRA]",
		Short: "Entry point for libvirt's qemu hook (/etc/libvirt/hooks/qemu.d/vswitch)",
		Long: `Entry point for libvirt's qemu hook: make install and the Debian package install
/etc/libvirt/hooks/qemu.d/vswitch, a script running "vswctl libvirt-hook \"$@\"", which libvirt 6.5
and later runs after /etc/libvirt/hooks/qemu (restart libvirtd once after installing it). NICs are <interface type='ethernet'> and their ports are described in the
domain's <metadata>, matched by MAC:

  <vsw:ports xmlns:vsw="urn:vswitch:libvirt:1">
    <vsw:port mac="52:54:00:12:34:56" vlan="100" pcp="3"/>
  </vsw:ports>

Attributes: mac, vlan | trunk [native-vlan], pcp, svid, and the VM's identity to the adjacent
bridge (802.1Qbg VDP): vsi-type, vsi-type-version, vsi-manager (0-255: libvirt's managerid),
instance-id (a UUID; default: derived from the domain's UUID and the MAC).

Live migration: "migrate begin" notes the domain as incoming, its "prepare begin" moves the note
on if it is at most 30 s old, and its "start begin" then adds the ports with their VSIs
pre-associated and fails if the bridge refuses ("started begin" re-adds them plainly if libvirt's
status file shows no incoming migration); vswitchd associates them (M bit) at the VM's
first frame. On the source, the "stopped end" that ends a migration de-associates
them with the S bit. $` + libvirtStateEnv + ` names libvirt's state directory of QEMU domains
(default ` + libvirt.DefaultStateDir + `), where the hook reads whether a domain migrated away or is
migrating in.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			call, err := libvirt.ParseHookArgs(args)
			if err != nil {
				return &usageError{msg: err.Error(), cmd: "vswctl libvirt-hook"}
			}
			act := call.Action()
			switch act {
			case libvirt.Ignore:
				// Read what libvirt writes so it never blocks on a full
				// pipe; print nothing (for "migrate" and "restore"
				// libvirt takes our stdout as the new domain XML).
				_, _ = io.Copy(io.Discard, cmd.InOrStdin())
				return nil
			case libvirt.Incoming:
				a.hookIncoming(cmd) // never fails, prints nothing on stdout
				return nil
			case libvirt.Prepare:
				a.hookPrepare(cmd) // never fails, prints nothing on stdout
				return nil
			case libvirt.Confirm:
				err = a.hookConfirm(cmd, call)
			default:
				err = a.hook(cmd, call, act)
			}
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

// incomingMarks are the hook's notes of domains migrating in, in a
// directory next to vswitchd's socket.
func (a *app) incomingMarks() libvirt.IncomingMarks {
	return libvirt.IncomingMarks{Dir: filepath.Join(filepath.Dir(a.socket), "libvirt-incoming")}
}

// hookIncoming notes, at "migrate begin", that the domain is migrating to
// this host, for its "start begin". It must neither fail (libvirt would
// cancel the migration over vswitch's bookkeeping) nor print on stdout
// (libvirt reads it as the domain XML): a problem is a note on stderr, and
// the ports are then associated at once, as before migration support.
func (a *app) hookIncoming(cmd *cobra.Command) {
	dom, err := libvirt.ParseDomain(cmd.InOrStdin())
	if err == nil && len(dom.Ports) > 0 {
		err = a.incomingMarks().Mark(dom.Owner())
	}
	if err != nil {
		fmt.Fprintf(a.stderr, "vswctl: %s (ignored: the domain's ports will be associated at once, not pre-associated)\n", oneLine(err.Error()))
	}
}

// hookPrepare moves the domain's note of an incoming migration on at its
// "prepare begin", for its "start begin" (libvirt.IncomingMarks.Prepare):
// a note left by an offline migration, or by one that failed before its
// QEMU started, has expired by then or is not followed by this start
// and is dropped. Like hookIncoming it neither fails nor prints on
// stdout.
func (a *app) hookPrepare(cmd *cobra.Command) {
	dom, err := libvirt.ParseDomain(cmd.InOrStdin())
	if err == nil && len(dom.Ports) > 0 {
		_, err = a.incomingMarks().Prepare(dom.Owner())
	}
	if err != nil {
		fmt.Fprintf(a.stderr, "vswctl: %s (ignored: the domain's ports will be associated at once, not pre-associated)\n", oneLine(err.Error()))
	}
}

// hookConfirm checks, at "started begin" (QEMU runs, the guest's CPUs do
// not yet), the domain's ports that its "start begin" added incoming
// against libvirt's status of the domain: unless it says the domain is
// migrating in (or there is no status to read), the start was a plain
// one that took a stale note, and each such port is re-added plainly,
// its VSIs associated at once (no M bit) rather than waiting for a
// migration that is not coming.
func (a *app) hookConfirm(cmd *cobra.Command, call libvirt.HookCall) error {
	dom, err := libvirt.ParseDomain(cmd.InOrStdin())
	if err != nil || len(dom.Ports) == 0 {
		return err
	}
	ports, err := a.api().ListPorts(cmd.Context())
	if err != nil {
		return fmt.Errorf("domain %s: list ports: %w", dom.Name, err)
	}
	incoming := map[string]bool{}
	for _, p := range dom.Owned(ports) {
		if p.Migration == port.MigrationIncoming {
			incoming[p.Name] = true
		}
	}
	if len(incoming) == 0 {
		return nil
	}
	in, known, err := libvirt.MigratingIn(libvirtStateDir(), call.Domain)
	if err != nil {
		return fmt.Errorf("domain %s: %w (its ports stay incoming)", dom.Name, err)
	}
	if in || !known {
		return nil
	}
	bs, err := dom.Bindings()
	if err != nil {
		return err
	}
	for _, b := range bs {
		if !incoming[b.Tap] {
			continue
		}
		fmt.Fprintf(a.stdout, "domain %s: port %s: not migrating in (libvirt's status has no incoming migration job): re-added, associated at once\n", dom.Name, b.Tap)
		if err := a.hookConfigure(cmd, call, dom.Name, b, b.Spec()); err != nil {
			return err
		}
	}
	return nil
}

func (a *app) hook(cmd *cobra.Command, call libvirt.HookCall, act libvirt.Action) error {
	dom, err := libvirt.ParseDomain(cmd.InOrStdin())
	if err != nil {
		return err
	}
	if act == libvirt.Remove {
		return a.hookRemove(cmd, call, dom)
	}
	bs, err := dom.Bindings()
	if err != nil {
		return err
	}
	return a.hookAdd(cmd, call, dom, bs)
}

// hookAdd adds the ports of bindings bs of domain dom: incoming at the
// "start begin" that follows the domain's "migrate begin" and "prepare
// begin" (the note says so), waiting for the bridge's answer to the
// pre-association.
func (a *app) hookAdd(cmd *cobra.Command, call libvirt.HookCall, dom *libvirt.Domain, bs []libvirt.Binding) error {
	var err error
	incoming := false
	if call.Op == "start" && len(bs) > 0 {
		if incoming, err = a.incomingMarks().Take(dom.Owner()); err != nil {
			fmt.Fprintf(a.stderr, "vswctl: %s (the ports are associated at once)\n", oneLine(err.Error()))
		}
	}
	var added []string
	for _, b := range bs {
		spec := b.Spec() // checked by the port rules in Bindings
		if incoming {
			in := port.MigrationIncoming
			spec.Migration = &in
		}
		if err := a.hookConfigure(cmd, call, dom.Name, b, spec); err != nil {
			return err
		}
		added = append(added, spec.Name)
	}
	if incoming {
		if err := a.waitPreassociated(cmd.Context(), added); err != nil {
			for _, name := range added {
				_ = a.api().DeletePort(cmd.Context(), name)
			}
			return fmt.Errorf("domain %s: %w", dom.Name, err)
		}
	}
	return nil
}

// waitPreassociated waits until the bridge answered the pre-association of
// the ports' VSIs. The ports' VSIs are registered when the ports are
// added; none (no EVB station, no VSI on such a port) or ones waiting for
// an EVB bridge leave nothing to wait for. A refusal, or no answer within
// preassociateWait, is an error naming the port, the VSIID and the reason.
func (a *app) waitPreassociated(ctx context.Context, ports []string) error {
	deadline := time.Now().Add(preassociateWait)
	mine := map[string]bool{}
	for _, p := range ports {
		mine[p] = true
	}
	for {
		vs, err := a.api().VSIs(ctx)
		if err != nil {
			return fmt.Errorf("pre-association: %w", err)
		}
		var pending *api.VSI
		for i, v := range vs {
			switch {
			case !mine[v.Port]:
			case v.State == vepa.VSIFailed:
				return fmt.Errorf("port %s: the bridge refused to pre-associate VSI %s: %s", v.Port, v.UUID, dash(v.Reason))
			case v.State == vepa.VSIPreAssociating:
				pending = &vs[i]
			}
		}
		if pending == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("port %s: the bridge did not answer the pre-association of VSI %s within %v", pending.Port, pending.UUID, preassociateWait)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("port %s: pre-association of VSI %s: %w", pending.Port, pending.UUID, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// hookConfigure adds the port of spec. At "start begin" a port of the
// same name is a leftover of an earlier VM on a recycled tap name and is
// replaced; at "reconnect begin" (libvirtd restarted, the VM runs) it is
// the VM's own and is kept.
func (a *app) hookConfigure(cmd *cobra.Command, call libvirt.HookCall, domain string, b libvirt.Binding, spec api.PortSpec) error {
	c := a.api()
	p, err := c.AddPort(cmd.Context(), spec)
	if api.CodeOf(err) == api.CodeAlreadyExists {
		if call.Op == "reconnect" {
			return a.hookCheck(cmd, domain, b)
		}
		if err = c.DeletePort(cmd.Context(), spec.Name); err == nil {
			p, err = c.AddPort(cmd.Context(), spec)
		}
	}
	if err != nil {
		return fmt.Errorf("domain %s: port %s: %w", domain, spec.Name, err)
	}
	fmt.Fprintf(a.stdout, "domain %s: port %s: %s\n", domain, p.Name, describePort(p))
	return nil
}

// hookRemove deletes the domain's ports: those its hook added (the owner
// is the domain's UUID) that carry one of its MACs, found in the port list
// because by now libvirt may have deleted the taps and dropped their names
// from the XML. A port of another domain that registered the same MAC, or
// one added by vswctl (no owner), is left alone. When the domain stops
// because it migrated away, each port is first made outgoing: vswitchd
// de-associates its VSIs with the S bit.
func (a *app) hookRemove(cmd *cobra.Command, call libvirt.HookCall, dom *libvirt.Domain) error {
	if len(dom.Ports) == 0 {
		return nil
	}
	if _, err := uuid.Parse(dom.Owner()); err == nil {
		// A migration here that ended before its start leaves its note.
		_ = a.incomingMarks().Drop(dom.Owner())
	}
	migrated := call.Migrated()
	if !migrated && call.Op == "stopped" {
		var err error
		if migrated, err = libvirt.MigratedOut(libvirtStateDir(), call.Domain); err != nil {
			fmt.Fprintf(a.stderr, "vswctl: %s (taken for a stop, not a migration)\n", oneLine(err.Error()))
		}
	}
	c := a.api()
	ports, err := c.ListPorts(cmd.Context())
	if err != nil {
		return fmt.Errorf("domain %s: list ports: %w", dom.Name, err)
	}
	for _, p := range dom.Owned(ports) {
		how := "deleted"
		if migrated {
			out := port.MigrationOutgoing
			if _, err := c.UpdatePort(cmd.Context(), p.Name, api.PortSpec{Migration: &out}); err != nil && api.CodeOf(err) != api.CodeNotFound {
				fmt.Fprintf(a.stderr, "vswctl: domain %s: port %s: %s (de-associated without the S bit)\n", dom.Name, p.Name, oneLine(err.Error()))
			}
			how = "deleted (the domain migrated away)"
		}
		if err := c.DeletePort(cmd.Context(), p.Name); err != nil && api.CodeOf(err) != api.CodeNotFound {
			return fmt.Errorf("domain %s: delete port %s: %w", dom.Name, p.Name, err)
		}
		fmt.Fprintf(a.stdout, "domain %s: port %s %s\n", dom.Name, p.Name, how)
	}
	return nil
}

// hookCheck compares a running VM's existing port with its binding (at
// reconnect; Binding.Describes, every setting the description covers) and
// says so on stderr when they differ; it changes nothing, the VM is
// running, except that a port matching the description but without an
// owner (added by a hook of an earlier version) gets the domain as its
// owner, so that it is removed when the domain stops.
func (a *app) hookCheck(cmd *cobra.Command, domain string, b libvirt.Binding) error {
	c := a.api()
	p, err := c.GetPort(cmd.Context(), b.Tap)
	if err != nil {
		return fmt.Errorf("domain %s: port %s: %w", domain, b.Tap, err)
	}
	adopted := p
	if adopted.Owner == "" {
		adopted.Owner = b.Owner
	}
	if !b.Describes(adopted) {
		fmt.Fprintf(a.stderr, "vswctl: domain %s: port %s differs from the domain's description (%s); left as it is (vswctl set-port to change it)\n",
			domain, b.Tap, describePort(p))
		return nil
	}
	if p.Owner == "" {
		owner := b.Owner
		if _, err := c.UpdatePort(cmd.Context(), b.Tap, api.PortSpec{Owner: &owner}); err != nil {
			return fmt.Errorf("domain %s: port %s: record the owner: %w", domain, b.Tap, err)
		}
	}
	return nil
}

// libvirtStateDir is libvirt's state directory of QEMU domains: $VSWCTL_LIBVIRT_STATE_DIR or
// libvirt.DefaultStateDir.
func libvirtStateDir() string {
	if dir := os.Getenv(libvirtStateEnv); dir != "" {
		return dir
	}
	return libvirt.DefaultStateDir
}
