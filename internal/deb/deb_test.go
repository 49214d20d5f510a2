package deb

import (
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var commit = time.Date(2026, 11, 27, 9, 6, 0, 0, time.UTC)

func TestVersion(t *testing.T) {
	for _, c := range []struct {
		describe, revision, want string
	}{
		{"9cf0f38", "1", "0.0~git20261127.090600.9cf0f38-1"},
		{"9cf0f38-dirty", "1", "0.0~git20261127.090600.9cf0f38.dirty-1"},
		{"v1.2.3", "1", "1.2.3-1"},
		{"1.2", "2", "1.2-2"},
		{"v1.2.3-4-gabcdef0", "1", "1.2.3+git20261127.090600.abcdef0-1"},
		{"v1.2.3-4-gabcdef0-dirty", "1", "1.2.3+git20261127.090600.abcdef0.dirty-1"},
		{"v1.2.3-rc1", "1", "1.2.3~rc1-1"},
		{"v0.3.0-rc.2-12-g0123456789ab", "1", "0.3.0~rc.2+git20261127.090600.0123456789ab-1"},
		{" v2.0\n", "1", "2.0-1"},
	} {
		got, err := Version(c.describe, commit, c.revision)
		if err != nil || got != c.want {
			t.Errorf("Version(%q, %s) = %q, %v; want %q", c.describe, c.revision, got, err, c.want)
		}
	}
	for _, c := range []struct{ describe, revision, why string }{
		{"dev", "1", "set DEB_VERSION"},      // an unstamped build
		{"", "1", "not git describe output"}, // nothing
		{"release-1.0", "1", "starts with a digit"},
		{"v1.0_beta", "1", "starts with a digit"},
		{"v1.0", "", "invalid Debian revision"},
		{"v1.0", "1-2", "invalid Debian revision"},
	} {
		if got, err := Version(c.describe, commit, c.revision); err == nil || !strings.Contains(err.Error(), c.why) {
			t.Errorf("Version(%q, %q) = %q, %v; want an error saying %q", c.describe, c.revision, got, err, c.why)
		}
	}
	// Versions sort as releases do (dpkg --compare-versions).
	if dpkg, err := exec.LookPath("dpkg"); err == nil {
		// Two commits of one day sort by time, whatever their hashes.
		order := []string{"0.0~git20261127.090600.f000000-1", "0.0~git20261127.101500.1234567-1", "0.0~git20261128.000001.0000000-1", "0.1~rc1-1", "0.1-1", "0.1+git20261201.000000.abcdef0-1", "0.2-1"}
		for i := 1; i < len(order); i++ {
			if err := exec.Command(dpkg, "--compare-versions", order[i-1], "lt", order[i]).Run(); err != nil {
				t.Errorf("dpkg: %s is not older than %s", order[i-1], order[i])
			}
		}
	}
}

func TestArch(t *testing.T) {
	for goarch, want := range map[string]string{"amd64": "amd64", "arm64": "arm64", "386": "i386", "arm": "armhf", "ppc64le": "ppc64el"} {
		if got, err := Arch(goarch); err != nil || got != want {
			t.Errorf("Arch(%s) = %q, %v; want %s", goarch, got, err, want)
		}
	}
	if _, err := Arch("wasm"); err == nil {
		t.Error("Arch(wasm): no error")
	}
}

// Stage on a small tree: DEBIAN/ has the filled control, the /etc files
// as conffiles, every other file's md5sum, the scripts; the doc directory
// the copyright and a changelog entry.
func TestStage(t *testing.T) {
	root := t.TempDir()
	write := func(rel, s string, mode os.FileMode) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("usr/bin/vswctl", strings.Repeat("x", 3000), 0o755)
	write("etc/libvirt/hooks/qemu.d/vswitch", "#!/bin/sh\n", 0o755)
	write("DEBIAN/stale", "from an earlier run", 0o644)
	contrib, err := filepath.Abs("../../contrib/debian")
	if err != nil {
		t.Fatal(err)
	}
	m := Meta{Version: "0.0~git20261127.090600.9cf0f38-1", Arch: "amd64", Describe: "9cf0f38", CommitTime: commit}
	if err := Stage(root, contrib, m); err != nil {
		t.Fatal(err)
	}
	read := func(rel string) string {
		b, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	control := read("DEBIAN/control")
	for _, want := range []string{"Package: vswitch\n", "Version: 0.0~git20261127.090600.9cf0f38-1\n", "Architecture: amd64\n", "Section: net\n", "Suggests: libvirt-daemon-system, lldpad\n"} {
		if !strings.Contains(control, want) {
			t.Errorf("control lacks %q:\n%s", want, control)
		}
	}
	// Files rounded up to KiB: vswctl 3, the hook 1, copyright, the
	// changelog 1, the overrides 1; one for each of the 11 directories
	// (usr, usr/bin, usr/share, usr/share/doc, .../vswitch, .../lintian,
	// .../overrides, etc, etc/libvirt, .../hooks, .../qemu.d).
	cr, err := os.Stat(filepath.Join(contrib, "copyright"))
	if err != nil {
		t.Fatal(err)
	}
	want := 3 + 1 + int(cr.Size()+1023)/1024 + 1 + 1 + 11
	if got := regexp.MustCompile(`Installed-Size: ([0-9]+)\n`).FindStringSubmatch(control); got == nil || got[1] != strconv.Itoa(want) {
		t.Errorf("Installed-Size: %v, want %d", got, want)
	}
	if placeholder.MatchString(control) {
		t.Errorf("a placeholder is left in control:\n%s", control)
	}
	if got := read("DEBIAN/conffiles"); got != "/etc/libvirt/hooks/qemu.d/vswitch\n" {
		t.Errorf("conffiles = %q", got)
	}
	sums := read("DEBIAN/md5sums")
	sum := md5.Sum([]byte(strings.Repeat("x", 3000)))
	if !strings.Contains(sums, hex.EncodeToString(sum[:])+"  usr/bin/vswctl\n") {
		t.Errorf("md5sums lacks vswctl's sum %x:\n%s", sum, sums)
	}
	if strings.Contains(sums, "etc/") || strings.Contains(sums, "DEBIAN") {
		t.Errorf("md5sums lists a conffile or DEBIAN/:\n%s", sums)
	}
	if _, err := os.Stat(filepath.Join(root, "DEBIAN/stale")); !os.IsNotExist(err) {
		t.Errorf("DEBIAN/ of an earlier run kept: %v", err)
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		fi, err := os.Stat(filepath.Join(root, "DEBIAN", s))
		if err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("DEBIAN/%s: %v %v, want mode 0755", s, fi, err)
		}
	}
	if want, err := os.ReadFile(filepath.Join(contrib, "copyright")); err != nil || read("usr/share/doc/vswitch/copyright") != string(want) {
		t.Errorf("copyright is not contrib/debian/copyright (%v)", err)
	}
	if want, err := os.ReadFile(filepath.Join(contrib, "lintian-overrides")); err != nil || read("usr/share/lintian/overrides/vswitch") != string(want) {
		t.Errorf("lintian overrides are not contrib/debian/lintian-overrides (%v)", err)
	}
	z, err := gzip.NewReader(strings.NewReader(read("usr/share/doc/vswitch/changelog.Debian.gz")))
	if err != nil {
		t.Fatal(err)
	}
	cl, _ := io.ReadAll(z)
	if z.Header.Name != "" || !z.Header.ModTime.IsZero() && z.Header.ModTime.Unix() != 0 {
		t.Errorf("changelog.Debian.gz has a name or time (%q %v): not reproducible", z.Header.Name, z.Header.ModTime)
	}
	entry := "vswitch (0.0~git20261127.090600.9cf0f38-1) unstable; urgency=medium\n\n  * Built from git 9cf0f38.\n\n -- vswitch maintainers <"
	if !bytes.HasPrefix(cl, []byte(entry)) || !bytes.HasSuffix(cl, []byte(">  Fri, 27 Nov 2026 09:06:00 +0000\n")) {
		t.Errorf("changelog:\n%s\nwant it to start %q and end with the commit's date", cl, entry)
	}
}

// The copyright file names every Go module linked into vswitchd and
// vswctl: a new dependency needs its paragraph (and its license).
func TestCopyrightCoversModules(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	out, err := exec.Command(goBin, "list", "-deps", "-f", "{{with .Module}}{{.Path}}{{end}}",
		"github.com/vswitch/vswitch/cmd/vswitchd", "github.com/vswitch/vswitch/cmd/vswctl").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	b, err := os.ReadFile("../../contrib/debian/copyright")
	if err != nil {
		t.Fatal(err)
	}
	copyright := string(b)
	n := 0
	for _, mod := range strings.Fields(string(out)) {
		if mod == "github.com/vswitch/vswitch" {
			continue
		}
		n++
		if !regexp.MustCompile(`(?m)^Files:.*\bvendor/` + regexp.QuoteMeta(mod) + `/\*`).MatchString(copyright) {
			t.Errorf("contrib/debian/copyright has no Files paragraph for %s (linked into the binaries): add it with its copyright and license", mod)
		}
	}
	if n < 10 {
		t.Errorf("go list found only %d modules: %s", n, out)
	}
	// Every License short name used has its text.
	for _, m := range regexp.MustCompile(`(?m)^License: (\S+)$`).FindAllStringSubmatch(copyright, -1) {
		if !regexp.MustCompile(`(?m)^License: ` + regexp.QuoteMeta(m[1]) + `\n `).MatchString(copyright) {
			t.Errorf("license %s has no text paragraph", m[1])
		}
	}
}

// The maintainer scripts, run with deb-systemd-helper, deb-systemd-invoke
// and systemctl replaced by stubs that log their arguments: a first
// install enables the unit and starts nothing, an upgrade keeps the
// admin's choice and restarts a running vswitchd (when systemd runs),
// remove stops it and masks the unit. (purge would delete
// /var/lib/vswitchd: not run here.)
func TestMaintainerScripts(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	systemd := false
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		systemd = true
	}
	run := func(wasEnabled bool, script string, args ...string) string {
		t.Helper()
		stubs := t.TempDir()
		log := filepath.Join(stubs, "log")
		was := "0"
		if !wasEnabled {
			was = "1"
		}
		for _, name := range []string{"deb-systemd-helper", "deb-systemd-invoke", "systemctl"} {
			body := "#!/bin/sh\necho \"" + name + " $*\" >> " + log + "\n"
			if name == "deb-systemd-helper" {
				body += "case \"$*\" in *was-enabled*) exit " + was + ";; esac\n"
			}
			if err := os.WriteFile(filepath.Join(stubs, name), []byte(body+"exit 0\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		cmd := exec.Command(sh, append([]string{"../../contrib/debian/" + script}, args...)...)
		cmd.Env = []string{"PATH=" + stubs + ":/usr/bin:/bin"}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", script, args, err, out)
		}
		b, _ := os.ReadFile(log)
		return string(b)
	}
	for _, c := range []struct {
		name       string
		wasEnabled bool
		script     string
		args       []string
		want       string // the calls, in order
		withSD     string // and then, when systemd runs
	}{
		{"first install", true, "postinst", []string{"configure", ""},
			"deb-systemd-helper unmask vswitchd.service\ndeb-systemd-helper --quiet was-enabled vswitchd.service\ndeb-systemd-helper enable vswitchd.service\n",
			"systemctl --system daemon-reload\n"},
		{"upgrade, disabled", false, "postinst", []string{"configure", "0.0~git20261101.1234567-1"},
			"deb-systemd-helper unmask vswitchd.service\ndeb-systemd-helper --quiet was-enabled vswitchd.service\ndeb-systemd-helper update-state vswitchd.service\n",
			"systemctl --system daemon-reload\ndeb-systemd-invoke try-restart vswitchd.service\n"},
		{"upgrade: prerm leaves it running", true, "prerm", []string{"upgrade", "0.0~git20261201.1234567-1"}, "", ""},
		{"remove", true, "prerm", []string{"remove"}, "", "deb-systemd-invoke stop vswitchd.service\n"},
		{"removed", true, "postrm", []string{"remove"}, "deb-systemd-helper mask vswitchd.service\n", ""},
	} {
		want := c.want
		if systemd {
			want += c.withSD
			if c.name == "removed" {
				want = "systemctl --system daemon-reload\n" + c.want
			}
		}
		if got := run(c.wasEnabled, c.script, c.args...); got != want {
			t.Errorf("%s: %s %v called\n%s\nwant\n%s", c.name, c.script, c.args, got, want)
		}
	}
}
