package main

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/spf13/cobra"
	"github.com/vswitch/vswitch/internal/version"
	"github.com/vswitch/vswitch/pkg/api"
)

// versionFlag gives the root command --version (version.Program's line).
// It is defined here, not left to cobra, so that -v stays free.
func versionFlag(root *cobra.Command) {
	root.Version = version.Get().String()
	root.SetVersionTemplate(version.Program("vswctl") + "\n")
	root.Flags().Bool("version", false, "print vswctl's version and exit")
}

// versions is `vswctl -o json version`: the client's build, and the
// daemon's as its status reports it (absent when it cannot be reached).
type versions struct {
	Client version.Info  `json:"client"`
	Daemon *version.Info `json:"daemon,omitempty"`
}

func (a *app) versionCmd() *cobra.Command {
	var clientOnly bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Show vswctl's version and vswitchd's",
		Long: `Show vswctl's version (as --version does) and the running vswitchd's, from its status.

When vswitchd cannot be reached, vswctl's line is printed, the reason is one line on
stderr and the exit status is 1 (--client: only vswctl's line, exit 0).`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			v := versions{Client: version.Get()}
			var err error
			if !clientOnly {
				var st api.Status
				if err = a.api().Do(cmd.Context(), http.MethodGet, "/v1/status", nil, &st); err == nil {
					v.Daemon = &version.Info{Version: st.Version, Commit: st.Commit, BuildDate: st.BuildDate, GoVersion: st.GoVersion}
				}
			}
			if a.output == "json" {
				b, merr := json.MarshalIndent(v, "", "  ")
				if merr != nil {
					return merr
				}
				if _, werr := fmt.Fprintf(a.stdout, "%s\n", b); werr != nil {
					return werr
				}
				return err
			}
			t := newTable(a.stdout)
			fmt.Fprintf(t, "vswctl\t%s\n", v.Client)
			if v.Daemon != nil {
				fmt.Fprintf(t, "vswitchd\t%s\n", v.Daemon)
			}
			if ferr := t.Flush(); ferr != nil {
				return ferr
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&clientOnly, "client", false, "only vswctl's version: do not ask vswitchd")
	return cmd
}
