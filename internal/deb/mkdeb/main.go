// Command mkdeb turns a staging directory filled by `make install
// DESTDIR=... PREFIX=/usr` into vswitch_VERSION_ARCH.deb (package deb):
// `make deb` runs it. It prints the package's path.
//
//	go run ./internal/deb/mkdeb -root build/deb/root -contrib contrib/debian -out build \
//	    -describe "$(git describe --tags --always --dirty)" -commit-time "$(git log -1 --format=%ct)"
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/vswitch/vswitch/internal/deb"
)

func main() {
	root := flag.String("root", "", "staging `DIR` (make install DESTDIR)")
	contrib := flag.String("contrib", "contrib/debian", "`DIR` of control, copyright and the maintainer scripts")
	out := flag.String("out", ".", "`DIR` to write the .deb into")
	describe := flag.String("describe", "", "git describe --tags --always --dirty of the build")
	commitTime := flag.String("commit-time", "", "the commit's time, Unix `SECONDS` (git log -1 --format=%ct)")
	version := flag.String("version", "", "Debian `VERSION` (default: from -describe and -commit-time)")
	revision := flag.String("revision", "1", "Debian revision of the derived version")
	goarch := flag.String("goarch", runtime.GOARCH, "GOARCH the binaries were built for")
	flag.Parse()
	if err := run(*root, *contrib, *out, *describe, *commitTime, *version, *revision, *goarch); err != nil {
		fmt.Fprintf(os.Stderr, "mkdeb: %v\n", err)
		os.Exit(1)
	}
}

func run(root, contrib, out, describe, commitTime, version, revision, goarch string) error {
	if root == "" {
		return fmt.Errorf("-root DIR is required")
	}
	arch, err := deb.Arch(goarch)
	if err != nil {
		return err
	}
	when := time.Now()
	if commitTime != "" {
		s, err := strconv.ParseInt(commitTime, 10, 64)
		if err != nil {
			return fmt.Errorf("invalid -commit-time %q: want Unix seconds", commitTime)
		}
		when = time.Unix(s, 0)
	}
	if version == "" {
		if version, err = deb.Version(describe, when, revision); err != nil {
			return err
		}
	}
	m := deb.Meta{Version: version, Arch: arch, Describe: describe, CommitTime: when}
	if m.Describe == "" {
		m.Describe = version
	}
	if err := deb.Stage(root, contrib, m); err != nil {
		return err
	}
	path, err := deb.Build(root, out, m)
	if err != nil {
		return err
	}
	fmt.Println(path)
	return nil
}
