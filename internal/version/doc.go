// Package version says which build of vswitch is running: the release
// (from `git describe`), the commit and the build date.
//
// The Makefile stamps them into both programs with the linker:
//
//	go build -ldflags "-X github.com/vswitch/vswitch/internal/version.version=v0.3.0-12-gabc1234 \
//	    -X github.com/vswitch/vswitch/internal/version.commit=abc1234... \
//	    -X github.com/vswitch/vswitch/internal/version.date=2026-11-27T09:00:00Z"
//
// A plain `go build` or `go run` stamps nothing; Get then falls back to what
// the Go toolchain records in every binary (runtime/debug.ReadBuildInfo:
// vcs.revision, vcs.time, vcs.modified), so even an unstamped binary names
// its commit. Version is "dev" when nothing says otherwise.
//
// vswitchd reports it in `GET /v1/status` ("version", "commit", "build_date"),
// in the vswitch_build_info metric and in --version; vswctl in --version and
// `vswctl version`, beside the daemon's.
package version
