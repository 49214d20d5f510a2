package main

import "github.com/spf13/cobra"

// libvirtHookCmd is the entry point libvirt runs as /etc/libvirt/hooks/qemu
// (DOMAIN OPERATION SUBOP EXTRA, domain XML on stdin). It does nothing yet:
// the libvirt integration lives in pkg/libvirt and replaces this stub.
func (a *app) libvirtHookCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "libvirt-hook DOMAIN OPERATION SUBOP EXTRA",
		Short:              "Entry point for libvirt's qemu hook (/etc/libvirt/hooks/qemu)",
		DisableFlagParsing: true,
		Args:               cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return nil
		},
	}
}
