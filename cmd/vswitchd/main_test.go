package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/vswitch/vswitch/internal/version"
)

// TestUsageErrorsExit2 checks that every bad command line is refused with
// exit code 2 and a one-line message naming the flag, before the daemon
// touches the state file or any interface.
func TestUsageErrorsExit2(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--datapath", "dpdk", "--uplink", "eth0"}, "invalid --datapath"},
		{[]string{"--port-datapath", "auto", "--uplink", "eth0"}, "invalid --port-datapath"},
		{[]string{"--datapath", "", "--uplink", "eth0"}, "need a value"},
		{[]string{"--port-datapath", "", "--uplink", "eth0"}, "need a value"},
		{[]string{"--mode", "bridge", "--uplink", "eth0"}, "invalid --mode"},
		{[]string{"--mtu", "9", "--uplink", "eth0"}, "invalid --mtu"},
		{[]string{"--lldp-interval", "10ms", "--uplink", "eth0"}, "invalid --lldp-interval"},
		{[]string{"--cdcp", "yes", "--uplink", "eth0"}, "invalid --cdcp"},
		{[]string{"--cdcp", "on", "--lldp-interval", "0", "--uplink", "eth0"}, "--cdcp on needs LLDP"},
		{[]string{"--lldp-interval", "soon", "--uplink", "eth0"}, `invalid argument "soon" for "--lldp-interval" flag`},
		{[]string{"--datapath-priority", "high", "--uplink", "eth0"}, "invalid --datapath-priority"},
		{[]string{"--preassociate-timeout", "10ms", "--uplink", "eth0"}, "invalid --preassociate-timeout"},
		{[]string{"--preassociate-timeout", "48h", "--uplink", "eth0"}, "invalid --preassociate-timeout"},
		{[]string{"--log-level", "loud", "--uplink", "eth0"}, "invalid --log-level"},
		{[]string{"--uplink-wait", "-1s", "--uplink", "eth0"}, "invalid --uplink-wait -1s: use 0 (do not wait) to 1h"},
		{[]string{"--uplink-wait", "2h", "--uplink", "eth0"}, "invalid --uplink-wait 2h0m0s: use 0 (do not wait) to 1h"},
		{[]string{"--datapath", "afxdp"}, "--uplink IF is required"},
		{[]string{"--uplink", "eth0", "extra"}, "unexpected argument"},
		{[]string{"--no-such-flag"}, "unknown flag: --no-such-flag (see vswitchd --help)"},
		{[]string{"-no-such-flag"}, "unknown flag: --no-such-flag"},
		{[]string{"--uplink"}, "flag needs an argument: --uplink"},
		{[]string{"--log-format", "syslog", "--uplink", "eth0"}, `invalid --log-format "syslog": use auto, text, json or journal`},
		{[]string{"--config", "/nonexistent/vswitchd.conf", "--uplink", "eth0"}, "config file: open /nonexistent/vswitchd.conf: no such file or directory"},
		{[]string{"--socket-group", "no-such-group-vsw", "--uplink", "eth0"}, "invalid --socket-group"},
		{[]string{"--socket-group", "-5", "--uplink", "eth0"}, "invalid --socket-group"},
		{[]string{"--libvirt", "libvirt-sock", "--uplink", "eth0"}, "invalid --libvirt"},
		{[]string{"--max-macs-per-port", "-1", "--uplink", "eth0"}, "invalid --max-macs-per-port -1: use 0-1048576"},
		{[]string{"--max-macs-per-port", "2000000", "--uplink", "eth0"}, "invalid --max-macs-per-port"},
		{[]string{"--max-macs-per-vlan", "0", "--uplink", "eth0"}, "invalid --max-macs-per-vlan 0: use 1-1048576"},
		{[]string{"--fdb-max", "0", "--uplink", "eth0"}, "invalid --fdb-max 0: use 1-1048576"},
		{[]string{"--fdb-max", "many", "--uplink", "eth0"}, `invalid argument "many" for "--fdb-max" flag`},
		{[]string{"--state", "", "--uplink", "eth0"}, "--state needs a PATH: leave it out for the default, /var/lib/vswitchd/state.db"},
		{[]string{"--socket", "", "--uplink", "eth0"}, "--socket needs a PATH: leave it out for the default"},
	} {
		var stdout, stderr bytes.Buffer
		// No config file: the machine's must not change the outcome.
		args := append([]string{"--config="}, tc.args...)
		if slices.Contains(tc.args, "--config") {
			args = tc.args
		}
		if code := run(args, &stdout, &stderr); code != 2 {
			t.Errorf("%v: exit %d, want 2 (stderr %q)", tc.args, code, stderr.String())
		}
		if !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: stderr %q does not say %q", tc.args, stderr.String(), tc.want)
		}
		if strings.Count(stderr.String(), "\n") != 1 || stdout.Len() != 0 {
			t.Errorf("%v: want one line on stderr, nothing on stdout; got %q, %q", tc.args, stderr.String(), stdout.String())
		}
	}
}

// TestHelp documents every flag in GNU style on stdout and exits 0.
func TestHelp(t *testing.T) {
	for _, h := range []string{"-h", "--help", "-help"} {
		var stdout, stderr bytes.Buffer
		if code := run([]string{h}, &stdout, &stderr); code != 0 || stderr.Len() != 0 {
			t.Fatalf("%s: exit %d, stderr %q", h, code, stderr.String())
		}
		for _, f := range []string{"--uplink IF", "--uplink-wait", "--datapath", "--port-datapath", "--mode", "--state PATH", "--socket PATH", "--metrics ADDR", "--mtu", "--datapath-priority", "--lldp-interval", "--cdcp", "--log-level", "--log-format", "--config FILE", "--socket-group GROUP", "--check", "--salvage NEWFILE", "--drop-port NAME", "--max-macs-per-port", "--max-macs-per-vlan", "--fdb-max", "--libvirt URI", "--preassociate-timeout", "--version", "(default \"/etc/vswitch/vswitchd.conf\")", "usage: vswitchd --uplink IF"} {
			if !strings.Contains(stdout.String(), f) {
				t.Errorf("%s: help does not mention %s:\n%s", h, f, stdout.String())
			}
		}
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"-version"}, {"--version", "--config", "/nonexistent"}} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 0 || stderr.Len() != 0 {
			t.Fatalf("%v: exit %d, stderr %q", args, code, stderr.String())
		}
		if got, want := stdout.String(), version.Program("vswitchd")+"\n"; got != want {
			t.Errorf("%v: %q, want %q", args, got, want)
		}
	}
}

// The old single-dash spelling (Go's flag package) still works, values
// that start with a dash stay values, and "--" ends the flags.
func TestSingleDashFlags(t *testing.T) {
	s, _, err := parse([]string{"-config=", "-uplink", "eth0", "-mtu=9000", "-datapath", "afpacket", "--mode", "veb",
		"-lldp-interval=10s", "-max-macs-per-port", "-1", "-drop-port", "-check", "-salvage=-x"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s.o.Uplink != "eth0" || s.o.MTU != 9000 || s.o.Datapath != "afpacket" || s.o.Mode != "veb" || s.lldp != 10*time.Second ||
		s.perPort != -1 || s.off.dropPort != "-check" || s.off.check || s.off.salvage != "-x" {
		t.Errorf("parsed %+v", s)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-config=", "-uplink", "eth0", "-max-macs-per-port", "-1"}, &stdout, &stderr); code != 2 ||
		!strings.Contains(stderr.String(), "invalid --max-macs-per-port -1") {
		t.Errorf("exit %d, %q", code, stderr.String())
	}
	if _, _, err := parse([]string{"--config=", "--uplink", "eth0", "--", "-mtu"}, io.Discard); err == nil ||
		err.Error() != `unexpected argument "-mtu" (see vswitchd --help)` {
		t.Errorf("after --: %v", err)
	}
	got := gnuArgs(FlagSet(), []string{"-uplink=eth0", "-h", "-5", "--mtu", "-uplink", "-socket-group", "-5"})
	want := []string{"--uplink=eth0", "-h", "-5", "--mtu", "-uplink", "--socket-group", "-5"}
	if !slices.Equal(got, want) {
		t.Errorf("gnuArgs: %q, want %q", got, want)
	}
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "vswitchd.conf")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// The config file sets what the command line does not; its values are
// checked as flags are, and a bad one names the file and line.
func TestConfigFile(t *testing.T) {
	p := writeConfig(t, `# the uplink
uplink = eth1
mtu = 9000
datapath afpacket
socket-group = root
log-format = json
lldp-interval = 0
`)
	s, origins, err := parse([]string{"--config", p, "--mtu", "1600"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	o, err := s.options()
	if err != nil {
		t.Fatal(err)
	}
	if o.Uplink != "eth1" || o.MTU != 1600 || o.Datapath != "afpacket" || o.SocketGroup == nil || *o.SocketGroup != 0 || o.LLDPInterval != -1 || s.logFormat != "json" {
		t.Errorf("options %+v, log format %q", o, s.logFormat)
	}
	if origins["uplink"] != p+":2" {
		t.Errorf("origins %v", origins)
	}
	for _, tc := range []struct {
		conf string
		args []string
		want string
	}{
		{"uplink = eth1\nmtu = 9", nil, p + ":2: invalid --mtu 9: use 68-65000"},
		{"uplink = eth1\nmtu = 9", []string{"--mtu", "10"}, "vswitchd: invalid --mtu 10: use 68-65000\n"},
		{"uplink = eth1\nmode = bridge", nil, p + `:2: invalid --mode "bridge": use vepa or veb`},
		{"uplink = eth1\ndatapath = dpdk", nil, p + `:2: invalid --datapath "dpdk"`},
		{"uplink = eth1\nport-datapath = auto", nil, p + `:2: invalid --port-datapath "auto"`},
		// The flag an error is about is known, not guessed from its text.
		{"uplink = eth1\ndatapath = no--port-datapath", nil, p + `:2: invalid --datapath "no--port-datapath": use auto, afpacket or afxdp`},
		{"uplink = eth1\nmode =", nil, p + `:2: invalid --mode "": use vepa or veb`},
		{"uplink = eth1\nlog-format = xml", nil, p + `:2: invalid --log-format "xml"`},
		{"uplink = eth1\nsocket-group = no-such-group-vsw", nil, p + ":2: invalid --socket-group"},
		{"uplinc = eth1", nil, p + `:1: unknown setting "uplinc"`},
		{"uplink = eth1\ncheck", nil, p + ":2: check cannot be set in the file"},
		{"mtu = 1500", nil, "vswitchd: --uplink IF is required (the NIC facing the adjacent bridge; or uplink = IF in " + p + ")"},
		{"uplink =", nil, p + ":1: --uplink IF is required"},
		{"uplink = eth1\nsocket =", nil, p + ":2: --socket needs a PATH"},
		{"uplink = eth1\nstate = \"\"", nil, p + ":2: --state needs a PATH"},
	} {
		if err := os.WriteFile(p, []byte(tc.conf), 0o644); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		if code := run(append([]string{"--config", p}, tc.args...), &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%q %v: exit %d, stderr %q; want 2 and %q", tc.conf, tc.args, code, stderr.String(), tc.want)
		}
	}
}

// The default config file may be absent; offline commands read it too
// (its state), and --config "" reads none.
func TestDefaultConfigOptional(t *testing.T) {
	if _, err := os.Stat(defaultConfig); err == nil {
		t.Skipf("%s exists on this machine", defaultConfig)
	}
	s, origins, err := parse([]string{"--uplink", "eth0"}, io.Discard)
	if err != nil || len(origins) != 0 || s.config != defaultConfig {
		t.Fatalf("without %s: %v, %v", defaultConfig, origins, err)
	}
	state := filepath.Join(t.TempDir(), "from-config.db")
	p := writeConfig(t, "state = "+state+"\n")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--config", p, "--check"}, &stdout, &stderr); !strings.Contains(stdout.String()+stderr.String(), state) {
		t.Errorf("--check with the config's state: exit %d, %q %q; want it to name %s", code, stdout.String(), stderr.String(), state)
	}
}

// The man page is rendered from FlagSet: every flag, with help and the
// defaults, nothing parsed.
func TestFlagSet(t *testing.T) {
	fs := FlagSet()
	if fs.Parsed() {
		t.Error("FlagSet parsed something")
	}
	n := 0
	fs.VisitAll(func(f *pflag.Flag) {
		n++
		if f.Usage == "" {
			t.Errorf("--%s has no help", f.Name)
		}
	})
	if n < 24 {
		t.Errorf("%d flags", n)
	}
	for name, def := range map[string]string{"datapath": "auto", "mode": "vepa", "mtu": "1500", "lldp-interval": "30s", "config": defaultConfig, "log-format": "auto"} {
		if f := fs.Lookup(name); f == nil || f.DefValue != def {
			t.Errorf("--%s: %+v, want default %q", name, f, def)
		}
	}
}

// --log-format journal writes syslog priorities and no timestamp.
func TestLoggerFormats(t *testing.T) {
	var buf bytes.Buffer
	s := &settings{level: "debug", logFormat: "journal"}
	log, err := s.logger(&buf)
	if err != nil {
		t.Fatal(err)
	}
	log.Warn("uplink down")
	if got := buf.String(); got != "<4>level=WARN msg=\"uplink down\"\n" {
		t.Errorf("journal: %q", got)
	}
}

// TestLookupGroup resolves names from /etc/group and numbers as they are.
func TestLookupGroup(t *testing.T) {
	if gid, err := lookupGroup("root"); err != nil || gid != 0 {
		t.Errorf("root: %d, %v; want 0", gid, err)
	}
	if gid, err := lookupGroup("4242"); err != nil || gid != 4242 {
		t.Errorf("4242: %d, %v", gid, err)
	}
	if _, err := lookupGroup("no-such-group-vsw"); err == nil {
		t.Error("an unknown group resolved")
	}
}

// The command line wins over the config file, the file over the defaults,
// VSWITCHD_SOCKET (--socket's default) among them.
func TestSettingsPrecedence(t *testing.T) {
	t.Setenv("VSWITCHD_SOCKET", "/run/env.sock")
	for _, tc := range []struct {
		conf string
		args []string
		want string
	}{
		{"", nil, "/run/env.sock"},
		{"socket = /run/file.sock", nil, "/run/file.sock"},
		{"socket = /run/file.sock", []string{"--socket", "/run/flag.sock"}, "/run/flag.sock"},
		{"socket = /run/file.sock", []string{"-socket=/run/flag.sock"}, "/run/flag.sock"},
	} {
		p := writeConfig(t, tc.conf)
		s, _, err := parse(append([]string{"--config", p}, tc.args...), io.Discard)
		if err != nil || s.o.Socket != tc.want {
			t.Errorf("file %q, args %v: socket %q (%v), want %q", tc.conf, tc.args, s.o.Socket, err, tc.want)
		}
	}
}

// The line vswitchd ends with is an err entry when stderr is the journal
// (auto, as under systemd), so `journalctl -u vswitchd -p err` shows why
// it did not start; --log-format text keeps it as it is.
func TestFatalLineInJournal(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "vswitchd.conf")
	if err := os.WriteFile(conf, []byte("uplink = eth0\nmtu = 9\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	stderr, err := os.Create(filepath.Join(dir, "journal"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	fi, err := stderr.Stat()
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--config", conf}, "<3>vswitchd: " + conf + ":2: invalid --mtu 9: use 68-65000\n"},
		{[]string{"--config", conf, "--log-format", "journal"}, "<3>vswitchd: " + conf + ":2: invalid --mtu 9: use 68-65000\n"},
		{[]string{"--config=", "--no-such-flag"}, "<3>vswitchd: unknown flag: --no-such-flag (see vswitchd --help)\n"},
		{[]string{"--config", conf, "--log-format", "text"}, "vswitchd: " + conf + ":2: invalid --mtu 9: use 68-65000\n"},
	} {
		if err := stderr.Truncate(0); err != nil {
			t.Fatal(err)
		}
		if _, err := stderr.Seek(0, 0); err != nil {
			t.Fatal(err)
		}
		if code := run(tc.args, io.Discard, stderr); code != 2 {
			t.Errorf("%v: exit %d, want 2", tc.args, code)
		}
		if b, _ := os.ReadFile(stderr.Name()); string(b) != tc.want {
			t.Errorf("%v: stderr %q, want %q", tc.args, b, tc.want)
		}
	}
}
