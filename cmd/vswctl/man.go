package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/vswitch/vswitch/internal/libvirt"
	"github.com/vswitch/vswitch/internal/manpage"
	"github.com/vswitch/vswitch/pkg/api"
)

// manCmd writes vswctl's manual pages, one per command, into DIR: `make
// man` runs it. Hidden: it is for the build, not for operators, and it
// does not talk to vswitchd.
func (a *app) manCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "__man DIR",
		Short:  "Write vswctl's manual pages into DIR",
		Hidden: true,
		Args:   exactArgs(1, "a directory (DIR)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			paths, err := manpage.WriteFiles(args[0], manpage.Tree(cmd.Root(), manpage.BuildHeader(), manExtra))
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "wrote %d manual pages to %s\n", len(paths), args[0])
			return nil
		},
	}
}

// manExtra adds what the pages say beyond --help: exit status,
// environment, files, and vswitchd(8).
func manExtra(cmd *cobra.Command, p *manpage.Page) {
	hook := manpage.Item{Tag: "/etc/libvirt/hooks/qemu.d/vswitch", Text: "libvirt's qemu hook as the package and make install put it: it runs vswctl libvirt-hook. libvirt (6.5 and later) runs every executable in /etc/libvirt/hooks/qemu.d after /etc/libvirt/hooks/qemu; restart libvirtd (or virtqemud) once after installing it, as libvirt looks for hooks when it starts."}
	switch {
	case !cmd.HasParent():
		p.Sections = append(p.Sections,
			manpage.Section{Title: "Exit status", Items: []manpage.Item{
				{Tag: "0", Text: "Success."},
				{Tag: "1", Text: "An error: one line on standard error says what went wrong and what to do (a bad value, an unknown or duplicate port, vswitchd not running)."},
				{Tag: "2", Text: "A usage error: an unknown command or flag, a missing or extra argument."},
			}},
			manpage.Section{Title: "Environment", Items: []manpage.Item{
				{Tag: api.SocketEnv, Text: "The API socket when --socket is not given (default " + api.DefaultSocket + ")."},
				{Tag: libvirtStateEnv, Text: "libvirt's state directory of QEMU domains, read by libvirt-hook (default " + libvirt.DefaultStateDir + ")."},
			}},
			manpage.Section{Title: "Files", Items: []manpage.Item{
				{Tag: api.DefaultSocket, Text: "vswitchd's API socket: root and the members of vswitchd --socket-group may connect."},
				hook,
			}},
		)
		p.SeeAlso = append(p.SeeAlso, "vswitchd(8)")
	case cmd.Name() == "libvirt-hook":
		p.Sections = append(p.Sections, manpage.Section{Title: "Files", Items: []manpage.Item{
			hook,
			{Tag: libvirt.DefaultStateDir + "/DOMAIN.xml", Text: "libvirt's status of a running domain: whether it is migrating in or out."},
		}})
		p.SeeAlso = append(p.SeeAlso, "vswitchd(8)", "virsh(1)")
	}
}
