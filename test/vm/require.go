package vm

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/vswitch/vswitch/pkg/api"
)

// Programs the VM tests run: QEMU, the libvirt daemon and client, and
// util-linux's nsenter (to run libvirtd in its private mount namespace).
var programs = []string{"qemu-system-x86_64", "libvirtd", "virsh", "nsenter"}

// qemuUser is the user Debian's libvirt resolves at start even when
// qemu.conf says root (libvirt-daemon-system creates it;
// scripts/install-deps.sh does when that package is not installed).
const qemuUser = "libvirt-qemu"

// Require returns the guest image (building its initramfs if needed)
// when everything the VM tests need is here: root, the programs, the
// libvirt-qemu user, a guest kernel in CacheDir. Otherwise it skips the
// test saying what is missing, except under CI (CI set), which installs
// all of it (`make deps`): there a missing piece fails the test.
func Require(tb testing.TB) Image {
	tb.Helper()
	miss := func(format string, args ...any) {
		tb.Helper()
		msg := fmt.Sprintf(format, args...) + " (`make deps` installs what the VM tests need)"
		if os.Getenv("CI") != "" && os.Geteuid() == 0 {
			tb.Fatalf("vm: %s; CI must run the VM tests", msg)
		}
		tb.Skipf("vm: %s", msg)
	}
	if os.Geteuid() != 0 {
		tb.Skip("vm: needs root (network namespaces, the libvirt system instance)")
	}
	for _, p := range programs {
		if _, err := exec.LookPath(p); err != nil {
			miss("%s not found", p)
		}
	}
	if _, err := user.Lookup(qemuUser); err != nil {
		miss("user %s missing: libvirtd will not start", qemuUser)
	}
	img, _, err := BuildImage(CacheDir())
	if err != nil {
		miss("guest image: %v", err)
	}
	return img
}

// HookScript is the hook script make install and the package install
// (contrib/libvirt/qemu-hook.in, the one copy of its text) with vswctl
// and socket in place of the installed binary and the default socket: the
// VM tests run what operators run. libvirt runs hooks with a minimal PATH
// and environment, so the script names both. It panics if the source tree
// is not where this file was compiled from, which a test run never sees.
func HookScript(vswctl, socket string) string {
	_, self, _, _ := runtime.Caller(0)
	in := filepath.Join(filepath.Dir(self), "..", "..", "contrib", "libvirt", "qemu-hook.in")
	b, err := os.ReadFile(in)
	if err != nil {
		panic(fmt.Sprintf("vm.HookScript: the hook script's template: %v", err))
	}
	return strings.NewReplacer("@BINDIR@/vswctl", vswctl, " "+api.DefaultSocket+" ", " "+socket+" ").Replace(string(b))
}
