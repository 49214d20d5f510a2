package integration

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"testing"

	"github.com/vswitch/vswitch/test/topo"
)

// Paths of the binaries TestMain builds; empty when the build was skipped.
var (
	vswitchdBin string
	vswctlBin   string
	buildErr    error
)

func TestMain(m *testing.M) {
	flag.Parse()
	// Most of the time of these tests is spent waiting (pings that must
	// fail, daemons starting), not computing: run more of them at once than
	// there are CPUs unless -parallel was given explicitly.
	explicit := false
	flag.Visit(func(f *flag.Flag) {
		if f.Name == "test.parallel" {
			explicit = true
		}
	})
	if !explicit {
		_ = flag.Set("test.parallel", fmt.Sprint(max(4, 2*runtime.GOMAXPROCS(0))))
	}
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		// Every test skips with its own reason; do not waste time building.
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "vsit-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: temp dir for binaries: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	vswitchdBin, vswctlBin, buildErr = topo.BuildDaemons(dir)
	return m.Run()
}

// needBinaries skips (not root) or fails (build broken) a test that runs the
// real binaries.
func needBinaries(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("integration: needs root (network namespaces, packet sockets, XDP)")
	}
	if buildErr != nil {
		t.Fatalf("integration: %v", buildErr)
	}
}
