package topo

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// BuildDaemons compiles vswitchd and vswctl into dir with the go tool on
// PATH (or /usr/local/go/bin/go): the binaries the end-to-end tests run.
// VSWITCH_RACE=1 builds them with the race detector (cgo on). Test
// packages call it from TestMain, once per run.
func BuildDaemons(dir string) (vswitchd, vswctl string, err error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	env := append(os.Environ(), "CGO_ENABLED=0")
	if os.Getenv("VSWITCH_RACE") != "" {
		args = append(args, "-race")
		env = append(os.Environ(), "CGO_ENABLED=1")
	}
	args = append(args, "github.com/vswitch/vswitch/cmd/vswitchd", "github.com/vswitch/vswitch/cmd/vswctl")
	cmd := exec.Command(goBin, args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", "", fmt.Errorf("go build vswitchd vswctl: %w\n%s", err, out)
	}
	return filepath.Join(dir, "vswitchd"), filepath.Join(dir, "vswctl"), nil
}
