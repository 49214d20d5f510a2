package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Set by the linker (-X); empty in an unstamped build. They are the only
// variables of the package and nothing but the linker writes them.
var (
	version string
	commit  string
	date    string
)

// Info is one build's identity.
type Info struct {
	Version   string `json:"version"`              // git describe, e.g. v0.3.0-12-gabc1234-dirty; "dev" unstamped
	Commit    string `json:"commit,omitempty"`     // full commit hash, "" when unknown
	BuildDate string `json:"build_date,omitempty"` // RFC 3339, UTC; the commit's time in an unstamped build
	GoVersion string `json:"go_version"`           // the toolchain, e.g. go1.26.0
	Modified  bool   `json:"modified,omitempty"`   // built from a tree with uncommitted changes (unstamped builds only)
}

// Get returns this binary's build identity.
func Get() Info {
	return from(version, commit, date, debug.ReadBuildInfo)
}

// from fills Info from the stamped values, then from the toolchain's build
// settings for what was not stamped.
func from(v, c, d string, read func() (*debug.BuildInfo, bool)) Info {
	in := Info{Version: v, Commit: c, BuildDate: d, GoVersion: runtime.Version()}
	if bi, ok := read(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if in.Commit == "" {
					in.Commit = s.Value
				}
			case "vcs.time":
				if in.BuildDate == "" {
					in.BuildDate = s.Value
				}
			case "vcs.modified":
				in.Modified = v == "" && s.Value == "true"
			}
		}
		if in.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			in.Version = bi.Main.Version // go install module@version
		}
	}
	if in.Version == "" {
		in.Version = "dev"
	}
	return in
}

// String is the one-line form --version prints:
// "v0.3.0-12-gabc1234 (commit abc1234567ab, built 2026-11-27T09:00:00Z, go1.26.0)".
// What is unknown is left out (an older vswitchd's status has no commit,
// date or Go version: then it is the version alone).
func (in Info) String() string {
	var parts []string
	if in.Commit != "" {
		c := in.Commit
		if len(c) > 12 {
			c = c[:12]
		}
		if in.Modified {
			c += "+changes"
		}
		parts = append(parts, "commit "+c)
	}
	if in.BuildDate != "" {
		parts = append(parts, "built "+in.BuildDate)
	}
	if in.GoVersion != "" {
		parts = append(parts, in.GoVersion)
	}
	if len(parts) == 0 {
		return in.Version
	}
	return in.Version + " (" + strings.Join(parts, ", ") + ")"
}

// Program is the line `PROG --version` prints, e.g. "vswitchd v0.3.0 (...)".
func Program(name string) string { return fmt.Sprintf("%s %s", name, Get()) }
