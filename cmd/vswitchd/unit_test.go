package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

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
		"After=network-pre.target networking.service systemd-networkd.service",
		"ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "WatchdogSec=",
	} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(want)).Match(unit) {
			t.Errorf("unit lacks %s", want)
		}
	}
	// The watchdog tolerates a slow disk: every change is fsynced under the
	// lock the watchdog's check takes (internal/daemon notifyReady).
	if w := unitValues(t, "WatchdogSec"); len(w) != 1 {
		t.Errorf("WatchdogSec=%v, want one", w)
	} else if d, err := time.ParseDuration(strings.TrimSuffix(w[0], "in")); err != nil || d < 2*time.Minute {
		t.Errorf("WatchdogSec=%s (%v): under 2 minutes, a stalled fsync gets vswitchd killed", w[0], err)
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

// unitValues returns the values of the unit's key= lines, in order.
func unitValues(t *testing.T, key string) []string {
	t.Helper()
	unit, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(key)+`=(.*)$`).FindAllSubmatch(unit, -1) {
		out = append(out, string(m[1]))
	}
	return out
}

// crashEnv makes this test binary, run by TestUnitRestartsAfterCrash, stand
// in for vswitchd: the same Go runtime, crashing one way or another.
const crashEnv = "VSWITCHD_TEST_CRASH"

// A Go panic and the watchdog's SIGABRT (WatchdogSignal='s default) end
// vswitchd in a way the unit restarts: the Go runtime's default for both is
// exit status 2, the status of a usage error, which RestartPreventExitStatus=
// keeps from restarting. Checked on this test binary (the same runtime) run
// with the unit's Environment= and judged as systemd does: Restart=on-failure
// restarts a non-zero exit status outside RestartPreventExitStatus=, or a
// death by a signal other than SIGHUP, SIGINT, SIGTERM and SIGPIPE. Every
// goroutine's stack must reach stderr (the journal).
func TestUnitRestartsAfterCrash(t *testing.T) {
	switch os.Getenv(crashEnv) {
	case "panic":
		go func() { select {} }()
		panic("vswitchd test crash")
	case "watchdog": // hangs until the watchdog's SIGABRT
		go func() { select {} }()
		fmt.Println("ready")
		time.Sleep(time.Minute)
		return
	}
	if got := unitValues(t, "Restart"); !slices.Equal(got, []string{"on-failure"}) {
		t.Fatalf("Restart=%v: this test judges Restart=on-failure", got)
	}
	prevent := map[int]bool{}
	for _, v := range unitValues(t, "RestartPreventExitStatus") {
		for _, f := range strings.Fields(v) {
			if n, err := strconv.Atoi(f); err == nil {
				prevent[n] = true
			}
		}
	}
	var env []string
	for _, v := range unitValues(t, "Environment") {
		env = append(env, strings.Fields(v)...)
	}
	for _, how := range []string{"panic", "watchdog"} {
		t.Run(how, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestUnitRestartsAfterCrash$")
			cmd.Env = append(append(slices.Clone(os.Environ()), env...), crashEnv+"="+how)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			if how == "watchdog" {
				line, _ := bufio.NewReader(stdout).ReadString('\n')
				if line != "ready\n" {
					cmd.Process.Kill()
					t.Fatalf("child said %q", line)
				}
				if err := cmd.Process.Signal(syscall.SIGABRT); err != nil {
					t.Fatal(err)
				}
			}
			io.Copy(io.Discard, stdout)
			cmd.Wait()
			ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
			switch {
			case ws.Exited() && (ws.ExitStatus() == 0 || prevent[ws.ExitStatus()]):
				t.Errorf("after a %s vswitchd exits with status %d: systemd would not restart vswitchd (RestartPreventExitStatus=%v, Environment=%v)",
					how, ws.ExitStatus(), unitValues(t, "RestartPreventExitStatus"), env)
			case ws.Signaled() && slices.Contains([]syscall.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM, syscall.SIGPIPE}, ws.Signal()):
				t.Errorf("after a %s vswitchd dies by %v, a clean exit for systemd: not restarted", how, ws.Signal())
			case !ws.Exited() && !ws.Signaled():
				t.Errorf("after a %s: wait status %v", how, ws)
			}
			if n := strings.Count(stderr.String(), "\ngoroutine "); n < 2 {
				t.Errorf("after a %s vswitchd wrote %d goroutine stacks to stderr, want every goroutine's:\n%s", how, n, stderr.String())
			}
		})
	}
}

// A panic's output is an err entry of the journal, so that `journalctl -u
// vswitchd -p err` shows why vswitchd died. The Go runtime writes it to
// stderr without the "<N>" prefix vswitchd's own lines carry, and the
// journal gives such a line the unit's SyslogLevel= (info by default).
// Judged as the journal does on this test binary's panic (the same
// runtime), under the unit's Environment=.
func TestUnitCrashIsAnError(t *testing.T) {
	if os.Getenv(crashEnv) == "panic" {
		go func() { select {} }()
		panic("vswitchd test crash")
	}
	level := 6 // info, systemd's default
	if v := unitValues(t, "SyslogLevel"); len(v) == 1 {
		p, ok := map[string]int{"emerg": 0, "alert": 1, "crit": 2, "err": 3, "warning": 4, "notice": 5, "info": 6, "debug": 7}[v[0]]
		if !ok {
			t.Fatalf("SyslogLevel=%s is not known to this test", v[0])
		}
		level = p
	}
	if v := unitValues(t, "SyslogLevelPrefix"); len(v) != 0 && v[0] != "yes" && v[0] != "true" {
		t.Fatalf("SyslogLevelPrefix=%s: the journal would not read vswitchd's own priorities", v[0])
	}
	var env []string
	for _, v := range unitValues(t, "Environment") {
		env = append(env, strings.Fields(v)...)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestUnitCrashIsAnError$")
	cmd.Env = append(append(slices.Clone(os.Environ()), env...), crashEnv+"=panic")
	out, _ := cmd.CombinedOutput()
	prio := regexp.MustCompile(`^<([0-7])>`)
	var crash, stacks int
	for _, line := range strings.Split(string(out), "\n") {
		p := level
		if m := prio.FindStringSubmatch(line); m != nil {
			p, _ = strconv.Atoi(m[1])
		}
		switch {
		case strings.HasPrefix(line, "panic: vswitchd test crash"):
			crash = p + 1
		case strings.HasPrefix(line, "goroutine "):
			stacks++
			if p > 3 {
				t.Errorf("%q would be a journal entry of priority %d, not err", line, p)
			}
		}
	}
	if crash == 0 || stacks < 2 {
		t.Fatalf("no panic with its stacks in the output:\n%s", out)
	}
	if crash-1 > 3 {
		t.Errorf("a panic is a journal entry of priority %d (SyslogLevel=%v), not err: journalctl -p err does not show why vswitchd died", crash-1, unitValues(t, "SyslogLevel"))
	}
}
