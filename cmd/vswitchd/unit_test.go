package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// The shipped files, from this package's directory.
const (
	unitFile   = "../../contrib/systemd/vswitchd.service"
	configFile = "../../contrib/systemd/vswitchd.conf"
)

// systemd-analyze verify finds nothing to say about the unit: it exits 0
// even for an unknown key or a bad value, so its output must be empty. The
// unit is verified with ExecStart pointing at an executable that exists
// here (it checks that), and without man pages (the package installs
// them).
func TestUnitVerifies(t *testing.T) {
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("systemd-analyze is not installed (CI=1: make deps installs systemd)")
		}
		t.Skip("systemd-analyze is not installed")
	}
	unit, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(unit, []byte("\nExecStart=/usr/sbin/vswitchd\n")) {
		t.Fatal("ExecStart is not /usr/sbin/vswitchd, where the package installs it")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(t.TempDir(), "vswitchd.service")
	if err := os.WriteFile(copyPath, bytes.Replace(unit, []byte("ExecStart=/usr/sbin/vswitchd"), []byte("ExecStart="+self), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tool, "verify", "--man=no", copyPath).CombinedOutput()
	if err != nil || len(out) != 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// The check works: a mistake is reported.
	bad := filepath.Join(t.TempDir(), "bad.service")
	if err := os.WriteFile(bad, bytes.Replace(unit, []byte("ProtectSystem=strict"), []byte("ProtectSystem=strictly"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, _ := exec.Command(tool, "verify", "--man=no", bad).CombinedOutput(); !bytes.Contains(out, []byte("protect system")) {
		t.Errorf("verify of a broken unit said %q", out)
	}
}

// The unit's properties the daemon depends on.
func TestUnitSettings(t *testing.T) {
	unit, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Type=notify", "NotifyAccess=main", "Restart=on-failure", "RestartPreventExitStatus=2",
		"RuntimeDirectory=vswitchd", "StateDirectory=vswitchd", "LimitMEMLOCK=infinity",
		"Before=network.target libvirtd.service virtqemud.service", "WantedBy=multi-user.target",
		"ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "WatchdogSec=",
	} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(want)).Match(unit) {
			t.Errorf("unit lacks %s", want)
		}
	}
	// The directories it makes are vswitchd's defaults.
	fs := FlagSet()
	for _, f := range []string{"state", "socket"} {
		if d := fs.Lookup(f).DefValue; !strings.HasPrefix(d, "/var/lib/vswitchd/") && !strings.HasPrefix(d, "/run/vswitchd/") {
			t.Errorf("--%s defaults to %s, outside StateDirectory and RuntimeDirectory", f, d)
		}
	}
}

// Every example in the shipped config file is a valid setting: each
// "#name = value" line, uncommented, goes through vswitchd's own flags.
func TestExampleConfig(t *testing.T) {
	text, err := os.ReadFile(configFile)
	if err != nil {
		t.Fatal(err)
	}
	example := regexp.MustCompile(`(?m)^#([a-z-]+ = .*)$`)
	var settings []string
	for _, m := range example.FindAllSubmatch(text, -1) {
		settings = append(settings, string(m[1]))
	}
	if len(settings) < 15 {
		t.Fatalf("%d examples in %s", len(settings), configFile)
	}
	p := filepath.Join(t.TempDir(), "vswitchd.conf")
	if err := os.WriteFile(p, []byte(strings.Join(settings, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	s, origins, err := parse([]string{"--config", p}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(origins) != len(settings) {
		t.Errorf("%d of %d settings applied", len(origins), len(settings))
	}
	s.group = "" // the example's libvirt group need not exist here
	if _, err := s.options(); err != nil {
		t.Errorf("the examples together: %v", err)
	}
	// Where an example states a default, it is the flag's.
	fs := FlagSet()
	for _, line := range settings {
		name, value, _ := strings.Cut(line, " = ")
		f := fs.Lookup(name)
		if f.DefValue != "" && f.DefValue != value && !(f.Value.Type() == "duration" && durationsEqual(f, value)) {
			t.Errorf("%s: example %q, default %q", name, value, f.DefValue)
		}
	}
}

func durationsEqual(f *pflag.Flag, v string) bool {
	fs := pflag.NewFlagSet("", pflag.ContinueOnError)
	d := fs.Duration("x", 0, "")
	return fs.Set("x", v) == nil && d.String() == f.DefValue
}
