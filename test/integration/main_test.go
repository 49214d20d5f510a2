package integration

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
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
	if err := build(dir); err != nil {
		buildErr = err
	} else {
		vswitchdBin = filepath.Join(dir, "vswitchd")
		vswctlBin = filepath.Join(dir, "vswctl")
	}
	return m.Run()
}

// build compiles vswitchd and vswctl into dir with the go tool that runs
// this test.
func build(dir string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	env := append(os.Environ(), "CGO_ENABLED=0")
	if os.Getenv("VSWITCH_RACE") != "" {
		// VSWITCH_RACE=1: daemons built with the race detector (needs cgo).
		args = append(args, "-race")
		env = append(os.Environ(), "CGO_ENABLED=1")
	}
	args = append(args, "github.com/vswitch/vswitch/cmd/vswitchd", "github.com/vswitch/vswitch/cmd/vswctl")
	cmd := exec.Command(goBin, args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build vswitchd vswctl: %w\n%s", err, out)
	}
	return nil
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
