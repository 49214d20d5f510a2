package dist

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// root is the source tree: make runs there.
const root = "../.."

// unit is the systemd unit's source and conf the example configuration,
// installed when the tree has them.
const (
	unit = root + "/contrib/systemd/vswitchd.service"
	conf = root + "/contrib/systemd/vswitchd.conf"
)

// confPath is where the configuration is installed (it outlives uninstall).
const confPath = "/etc/vswitch/vswitchd.conf"

// need skips the test when tool is missing, or fails it under CI, where
// `make deps` installed everything.
func need(t *testing.T, tool, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err == nil {
		return p
	}
	msg := tool + " not installed (Debian: apt-get install " + pkg + "; make deps installs it)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// runMake runs make in the source tree with its own build directories
// under dir and returns its output.
func runMake(t *testing.T, dir string, args ...string) string {
	t.Helper()
	need(t, "make", "make")
	need(t, "git", "git")
	args = append([]string{"-C", root, "--no-print-directory", "BIN=" + filepath.Join(dir, "bin"), "BUILD=" + filepath.Join(dir, "build")}, args...)
	cmd := exec.Command("make", args...)
	// Not the make that runs the tests (make test): its jobserver and
	// flags are not this make's.
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != "MAKEFLAGS" && k != "MFLAGS" && k != "MAKELEVEL" && k != "PATH" {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "PATH="+os.Getenv("PATH")+":/usr/local/go/bin")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("make %s: %v", args[len(args)-1], time.Since(start).Round(time.Second))
	return string(out)
}

// files lists dir's regular files as /paths relative to dir, with their
// modes.
func files(t *testing.T, dir string) map[string]fs.FileMode {
	t.Helper()
	got := map[string]fs.FileMode{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		got["/"+filepath.ToSlash(rel)] = info.Mode()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func gunzip(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	b, err := io.ReadAll(z)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return string(b)
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// expected is what `make install` puts under prefix (and /etc), with the
// modes, for the pages in man (NAME.SECTION).
func expected(t *testing.T, prefix string, man []string) map[string]fs.FileMode {
	want := map[string]fs.FileMode{
		prefix + "/sbin/vswitchd":                               0o755,
		prefix + "/bin/vswctl":                                  0o755,
		prefix + "/share/bash-completion/completions/vswctl":    0o644,
		prefix + "/share/fish/vendor_completions.d/vswctl.fish": 0o644,
		"/etc/libvirt/hooks/qemu.d/vswitch":                     0o755,
		prefix + "/share/doc/vswitch/README.md":                 0o644,
	}
	// Every file of docs/ (libvirt.md, security.md, ...).
	docs, err := filepath.Glob(root + "/docs/*")
	if err != nil || len(docs) < 3 {
		t.Fatalf("docs/: %v %v", docs, err)
	}
	for _, d := range docs {
		want[prefix+"/share/doc/vswitch/"+filepath.Base(d)] = 0o644
	}
	zsh := "/share/zsh/site-functions/_vswctl"
	if prefix == "/usr" {
		zsh = "/share/zsh/vendor-completions/_vswctl"
	}
	want[prefix+zsh] = 0o644
	for _, m := range man {
		want[prefix+"/share/man/man"+m[strings.LastIndexByte(m, '.')+1:]+"/"+m+".gz"] = 0o644
	}
	if _, err := os.Stat(unit); err == nil {
		want[prefix+"/lib/systemd/system/vswitchd.service"] = 0o644
	}
	if _, err := os.Stat(conf); err == nil {
		want[confPath] = 0o644
	}
	return want
}

// manPages are the pages make man wrote: vswitchd(8) and vswctl's, one per
// command.
func manPages(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(filepath.Join(dir, "build", "man"))
	if err != nil {
		t.Fatal(err)
	}
	var ns []string
	for _, e := range es {
		ns = append(ns, e.Name())
	}
	for _, must := range []string{"vswitchd.8", "vswctl.1", "vswctl-add-port.1", "vswctl-del-port.1", "vswctl-libvirt-hook.1", "vswctl-completion-bash.1"} {
		if !slices.Contains(ns, must) {
			t.Errorf("make man wrote %v: no %s", ns, must)
		}
	}
	return ns
}

// make install DESTDIR=tmp lays out every file README.md lists, and
// nothing else; the hook and the unit name the installed binaries, which
// run; make uninstall removes every file again.
func TestMakeInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the programs")
	}
	t.Parallel()
	dir := t.TempDir()
	dest := filepath.Join(dir, "dest")
	runMake(t, dir, "DESTDIR="+dest, "install")
	man := manPages(t, dir)

	got := files(t, dest)
	want := expected(t, "/usr/local", man)
	for p, mode := range want {
		if g, ok := got[p]; !ok {
			t.Errorf("make install did not install %s", p)
		} else if g.Perm() != mode {
			t.Errorf("%s: mode %v, want %v", p, g.Perm(), mode)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("make install installed %s, which README.md does not list", p)
		}
	}

	hook := read(t, dest+"/etc/libvirt/hooks/qemu.d/vswitch")
	if !strings.HasPrefix(hook, "#!/bin/sh\n") || !strings.HasSuffix(hook, "\nexec /usr/local/bin/vswctl --socket /run/vswitchd/vswitchd.sock libvirt-hook \"$@\"\n") {
		t.Errorf("installed hook does not run /usr/local/bin/vswctl:\n%s", hook)
	}
	if _, err := os.Stat(unit); err == nil {
		u := read(t, dest+"/usr/local/lib/systemd/system/vswitchd.service")
		if !strings.Contains(u, "ExecStart=/usr/local/sbin/vswitchd") {
			t.Errorf("installed unit does not start /usr/local/sbin/vswitchd:\n%s", u)
		}
	}
	page := gunzip(t, dest+"/usr/local/share/man/man1/vswctl-del-port.1.gz")
	if !strings.Contains(page, ".SH NAME\nvswctl\\-del\\-port \\- Remove a port\n") {
		t.Errorf("vswctl-del-port.1.gz:\n%s", page)
	}
	for path, want := range map[string]string{
		"/usr/local/share/bash-completion/completions/vswctl":    "__start_vswctl",
		"/usr/local/share/zsh/site-functions/_vswctl":            "#compdef vswctl",
		"/usr/local/share/fish/vendor_completions.d/vswctl.fish": "complete -c vswctl",
	} {
		if s := read(t, dest+path); !strings.Contains(s, want) || !strings.Contains(s, "__complete") {
			t.Errorf("%s lacks %q or the __complete call", path, want)
		}
	}
	out, err := exec.Command(dest+"/usr/local/bin/vswctl", "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "completion") {
		t.Errorf("installed vswctl --help: %v\n%s", err, out)
	}
	out, err = exec.Command(dest+"/usr/local/sbin/vswitchd", "--help").CombinedOutput()
	if !strings.Contains(string(out), "uplink") {
		t.Errorf("installed vswitchd --help: %v\n%s", err, out)
	}

	// An operator's configuration survives a second install and uninstall.
	if _, err := os.Stat(conf); err == nil {
		if read(t, dest+confPath) != read(t, conf) {
			t.Errorf("%s is not the example %s", confPath, conf)
		}
		if err := os.WriteFile(dest+confPath, []byte("uplink = eth9\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		runMake(t, dir, "-o", "build", "DESTDIR="+dest, "install") // the binaries are built
		if got := read(t, dest+confPath); got != "uplink = eth9\n" {
			t.Errorf("a second make install replaced the operator's %s: %q", confPath, got)
		}
	}
	runMake(t, dir, "DESTDIR="+dest, "uninstall")
	left := files(t, dest)
	delete(left, confPath)
	if len(left) != 0 {
		t.Errorf("make uninstall left %v", left)
	}
}

// make deb builds vswitch_VERSION_ARCH.deb: lintian reports no error and
// no warning (the accepted ones are overridden with their reasons),
// dpkg-deb shows the control fields, the conffile and every file make
// install lays out under /usr, owned by root; the programs in it run.
func TestMakeDeb(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the programs")
	}
	t.Parallel()
	dpkgDeb := need(t, "dpkg-deb", "dpkg")
	lintian := need(t, "lintian", "lintian")
	dir := t.TempDir()
	out := runMake(t, dir, "deb")
	// mkdeb's last words: the package's path, in BUILD.
	lines := strings.Split(strings.TrimSpace(out), "\n")
	deb := lines[len(lines)-1]
	base := filepath.Base(deb)
	if filepath.Dir(deb) != filepath.Join(dir, "build") || !strings.HasPrefix(base, "vswitch_") || !strings.HasSuffix(base, ".deb") {
		t.Fatalf("make deb's last line %q is not BUILD/vswitch_*.deb", deb)
	}

	// Control fields.
	field := func(name string) string {
		b, err := exec.Command(dpkgDeb, "-f", deb, name).Output()
		if err != nil {
			t.Fatalf("dpkg-deb -f %s: %v", name, err)
		}
		return strings.TrimSpace(string(b))
	}
	version := field("Version")
	arch := field("Architecture")
	if want := "vswitch_" + version + "_" + arch + ".deb"; base != want {
		t.Errorf("package file %s, want %s", base, want)
	}
	describe, _ := exec.Command("git", "-C", root, "describe", "--tags", "--always", "--dirty").Output()
	if d := strings.TrimSpace(string(describe)); !strings.Contains(version, strings.TrimSuffix(d, "-dirty")) || !(version[0] >= '0' && version[0] <= '9') || !strings.HasSuffix(version, "-1") {
		t.Errorf("Version %q: want a leading digit, git describe's %q in it and revision -1", version, d)
	}
	for name, want := range map[string]string{
		"Package": "vswitch", "Section": "net", "Priority": "optional",
		"Suggests": "libvirt-daemon-system, lldpad", "Enhances": "libvirt-daemon",
	} {
		if got := field(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	if field("Depends") != "" {
		t.Errorf("Depends: %q, want none (static programs)", field("Depends"))
	}
	if field("Maintainer") == "" || !strings.Contains(field("Description"), "802.1Qbg") {
		t.Errorf("Maintainer %q, Description %q", field("Maintainer"), field("Description"))
	}

	// Contents: every file make install lays out under /usr, owned by root.
	list, err := exec.Command(dpkgDeb, "-c", deb).Output()
	if err != nil {
		t.Fatalf("dpkg-deb -c: %v", err)
	}
	contents := map[string]string{} // path -> "mode owner"
	for _, l := range strings.Split(strings.TrimSpace(string(list)), "\n") {
		f := strings.Fields(l)
		if len(f) < 6 {
			t.Fatalf("dpkg-deb -c line %q", l)
		}
		contents[strings.TrimPrefix(f[5], ".")] = f[0] + " " + f[1]
	}
	man := manPages(t, dir)
	want := expected(t, "/usr", man)
	want["/usr/share/doc/vswitch/copyright"] = 0o644
	want["/usr/share/doc/vswitch/changelog.Debian.gz"] = 0o644
	want["/usr/share/lintian/overrides/vswitch"] = 0o644
	for p, mode := range want {
		got, ok := contents[p]
		if !ok {
			t.Errorf("package lacks %s", p)
			continue
		}
		if m := fs.FileMode(mode).String(); got != m+" root/root" {
			t.Errorf("%s: %s, want %s root/root", p, got, m)
		}
	}
	for p, mode := range contents {
		if _, ok := want[p]; !ok && !strings.HasPrefix(mode, "d") {
			t.Errorf("package holds %s, which README.md does not list", p)
		}
	}

	// Control files: the hook is a conffile; the scripts are there.
	ctrl := filepath.Join(dir, "control")
	if out, err := exec.Command(dpkgDeb, "-e", deb, ctrl).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -e: %v\n%s", err, out)
	}
	wantConf := "/etc/libvirt/hooks/qemu.d/vswitch\n"
	if _, err := os.Stat(conf); err == nil {
		wantConf += confPath + "\n"
	}
	if got := read(t, ctrl+"/conffiles"); got != wantConf {
		t.Errorf("conffiles %q, want %q", got, wantConf)
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		if !strings.Contains(read(t, ctrl+"/"+s), "vswitchd.service") {
			t.Errorf("%s does not handle vswitchd.service", s)
		}
	}

	// The programs run from the package; the hook and the unit name them.
	x := filepath.Join(dir, "x")
	if out, err := exec.Command(dpkgDeb, "-x", deb, x).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x: %v\n%s", err, out)
	}
	if out, err := exec.Command(x+"/usr/bin/vswctl", "--help").CombinedOutput(); err != nil || !strings.Contains(string(out), "completion") {
		t.Errorf("packaged vswctl --help: %v\n%s", err, out)
	}
	if out, _ := exec.Command(x+"/usr/sbin/vswitchd", "--help").CombinedOutput(); !strings.Contains(string(out), "uplink") {
		t.Errorf("packaged vswitchd --help:\n%s", out)
	}
	if h := read(t, x+"/etc/libvirt/hooks/qemu.d/vswitch"); !strings.Contains(h, "\nexec /usr/bin/vswctl --socket /run/vswitchd/vswitchd.sock libvirt-hook \"$@\"\n") {
		t.Errorf("packaged hook does not run /usr/bin/vswctl:\n%s", h)
	}
	if _, err := os.Stat(unit); err == nil {
		if u := read(t, x+"/usr/lib/systemd/system/vswitchd.service"); !strings.Contains(u, "ExecStart=/usr/sbin/vswitchd") {
			t.Errorf("packaged unit does not start /usr/sbin/vswitchd:\n%s", u)
		}
	}
	if cl := gunzip(t, x+"/usr/share/doc/vswitch/changelog.Debian.gz"); !strings.HasPrefix(cl, "vswitch ("+version+") ") {
		t.Errorf("changelog.Debian.gz does not start with this version:\n%s", cl)
	}

	lifecycle(t, deb, filepath.Join(dir, "root"), read(t, ctrl+"/postrm"))

	// lintian: nothing at error or warning level.
	cmd := exec.Command(lintian, "--tag-display-limit", "0", deb)
	var so bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &so
	err = cmd.Run()
	var bad []string
	for _, l := range strings.Split(so.String(), "\n") {
		if strings.HasPrefix(l, "E: ") || strings.HasPrefix(l, "W: ") {
			bad = append(bad, l)
		}
	}
	if len(bad) > 0 || err != nil {
		t.Errorf("lintian %s: %v\n%s", base, err, strings.Join(bad, "\n"))
	}
	t.Logf("lintian: %s", strings.TrimSpace(so.String()))
}

// lifecycle installs the package with dpkg into an empty tree (dpkg
// --root, maintainer scripts run with DPKG_ROOT, which they honour: no
// service of this machine is touched), then removes and purges it: install
// lays out the files and enables the unit; remove takes the programs,
// keeps the conffiles and the state file, masks the unit; purge leaves
// nothing.
func lifecycle(t *testing.T, deb, root, postrm string) {
	t.Helper()
	// Scripts run on this machine: a postrm that deletes outside
	// DPKG_ROOT would purge this machine's vswitchd state. Not run then.
	if strings.Count(postrm, "/var/lib/vswitchd") != strings.Count(postrm, `"$DPKG_ROOT/var/lib/vswitchd"`) {
		t.Fatalf("postrm deletes /var/lib/vswitchd outside $DPKG_ROOT: not running the package's scripts here\n%s", postrm)
	}
	dpkg := need(t, "dpkg", "dpkg")
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command(dpkg, append([]string{"--root=" + root, "--force-script-chrootless", "--force-not-root"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	exists := func(rel string) bool {
		_, err := os.Lstat(filepath.Join(root, rel))
		return err == nil
	}
	hasUnit := false
	if _, err := os.Stat(unit); err == nil {
		hasUnit = true
	}

	run("-i", deb)
	for _, f := range []string{"usr/sbin/vswitchd", "usr/bin/vswctl", "etc/libvirt/hooks/qemu.d/vswitch", "usr/share/man/man8/vswitchd.8.gz"} {
		if !exists(f) {
			t.Errorf("dpkg -i: no %s", f)
		}
	}
	wants := "etc/systemd/system/multi-user.target.wants/vswitchd.service"
	if hasUnit && !exists(wants) {
		t.Errorf("dpkg -i: vswitchd.service not enabled (no %s)", wants)
	}
	// What vswitchd and the operator leave: the state file, a changed configuration.
	if err := os.MkdirAll(filepath.Join(root, "var/lib/vswitchd"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "var/lib/vswitchd/state.db"), []byte("ports"), 0o600); err != nil {
		t.Fatal(err)
	}

	run("-r", "vswitch")
	for _, f := range []string{"usr/sbin/vswitchd", "usr/bin/vswctl", "usr/share/man/man8/vswitchd.8.gz"} {
		if exists(f) {
			t.Errorf("dpkg -r left %s", f)
		}
	}
	for _, f := range []string{"etc/libvirt/hooks/qemu.d/vswitch", "var/lib/vswitchd/state.db"} {
		if !exists(f) {
			t.Errorf("dpkg -r removed %s (a conffile or the state: purge's)", f)
		}
	}
	if mask, err := os.Readlink(filepath.Join(root, "etc/systemd/system/vswitchd.service")); hasUnit && (err != nil || mask != "/dev/null") {
		t.Errorf("dpkg -r: vswitchd.service not masked: %q %v", mask, err)
	}

	run("-P", "vswitch")
	var left []string
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(root, p)
		switch {
		case err != nil:
			return err
		case rel == "var/lib/dpkg":
			return filepath.SkipDir
		case !d.IsDir():
			left = append(left, rel)
		}
		return nil
	})
	if len(left) > 0 {
		t.Errorf("dpkg -P left %v", left)
	}
}

// TestHookWithoutVswctl runs the libvirt hook script (contrib/libvirt/qemu-hook.in)
// as libvirt does, with the domain XML on stdin: with vswctl present it
// hands over to it (its exit status is the hook's), and with vswctl gone
// (`apt remove` leaves the hook, a conffile, behind) it exits 0 printing
// nothing, since libvirt refuses to start a VM whose hook fails: removing
// vswitch must not stop every VM on the host from starting.
func TestHookWithoutVswctl(t *testing.T) {
	sh := need(t, "sh", "dash")
	tmpl := read(t, root+"/contrib/libvirt/qemu-hook.in")
	bindir := t.TempDir()
	hook := filepath.Join(t.TempDir(), "vswitch")
	if err := os.WriteFile(hook, []byte(strings.ReplaceAll(tmpl, "@BINDIR@", bindir)), 0o755); err != nil {
		t.Fatal(err)
	}
	xml := `<domain type="kvm"><name>vm1</name><uuid>11111111-2222-3333-4444-555555555555</uuid></domain>`
	run := func() (string, int) {
		cmd := exec.Command(sh, hook, "vm1", "start", "begin", "-")
		cmd.Stdin = strings.NewReader(xml)
		cmd.Env = []string{"PATH=/usr/bin:/bin"} // libvirt's minimal environment
		out, err := cmd.Output()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("run hook: %v", err)
		}
		return string(out), code
	}
	if out, code := run(); code != 0 || out != "" {
		t.Errorf("hook without vswctl: exit %d, stdout %q; want exit 0 and nothing (libvirt would refuse to start the VM)", code, out)
	}
	// A stand-in vswctl: the hook must still run it with libvirt's
	// arguments, and fail the start when it fails.
	fake := "#!/bin/sh\necho \"$@\"\ncat\nexit 3\n"
	if err := os.WriteFile(filepath.Join(bindir, "vswctl"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	out, code := run()
	want := "--socket /run/vswitchd/vswitchd.sock libvirt-hook vm1 start begin -\n" + xml
	if code != 3 || out != want {
		t.Errorf("hook with vswctl: exit %d, stdout %q; want exit 3 and %q", code, out, want)
	}
}
