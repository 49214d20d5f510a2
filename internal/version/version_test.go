package version

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestFrom(t *testing.T) {
	vcs := func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
			{Key: "vcs.time", Value: "2026-11-01T10:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		}}, true
	}
	none := func() (*debug.BuildInfo, bool) { return nil, false }
	for _, tc := range []struct {
		name    string
		v, c, d string
		read    func() (*debug.BuildInfo, bool)
		want    Info
		line    string
	}{
		{"stamped wins", "v1.2.3", "feedface", "2026-11-27T09:00:00Z", vcs,
			Info{Version: "v1.2.3", Commit: "feedface", BuildDate: "2026-11-27T09:00:00Z"},
			"v1.2.3 (commit feedface, built 2026-11-27T09:00:00Z, "},
		{"unstamped falls back to vcs", "", "", "", vcs,
			Info{Version: "dev", Commit: "0123456789abcdef0123456789abcdef01234567", BuildDate: "2026-11-01T10:00:00Z", Modified: true},
			"dev (commit 0123456789ab+changes, built 2026-11-01T10:00:00Z, "},
		{"nothing known", "", "", "", none, Info{Version: "dev"}, "dev (go"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := from(tc.v, tc.c, tc.d, tc.read)
			tc.want.GoVersion = got.GoVersion
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			if !strings.HasPrefix(got.String(), tc.line) {
				t.Errorf("String() = %q, want prefix %q", got.String(), tc.line)
			}
		})
	}
}

func TestGetNeverEmpty(t *testing.T) {
	in := Get()
	if in.Version == "" || !strings.HasPrefix(in.GoVersion, "go") {
		t.Errorf("Get() = %+v: version and go version must be set", in)
	}
}

// TestStringLeavesOutTheUnknown: a daemon's status from before commit and
// date were reported gives only a version; no empty parentheses or commas.
func TestStringLeavesOutTheUnknown(t *testing.T) {
	for _, tc := range []struct {
		in   Info
		want string
	}{
		{Info{Version: "v0.2.0"}, "v0.2.0"},
		{Info{Version: "v0.3.0", Commit: "0123456789abcdef"}, "v0.3.0 (commit 0123456789ab)"},
		{Info{Version: "v0.3.0", BuildDate: "2026-11-27T09:00:00Z", GoVersion: "go1.26.0"}, "v0.3.0 (built 2026-11-27T09:00:00Z, go1.26.0)"},
	} {
		if got := tc.in.String(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.in, got, tc.want)
		}
	}
}
