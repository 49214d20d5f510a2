package flagfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

type vals struct {
	uplink, metrics, group string
	mtu                    int
	lldp                   time.Duration
	check, flood           bool
}

func flags(v *vals) *pflag.FlagSet {
	fs := pflag.NewFlagSet("prog", pflag.ContinueOnError)
	fs.StringVar(&v.uplink, "uplink", "", "")
	fs.StringVar(&v.metrics, "metrics", ":1", "")
	fs.StringVar(&v.group, "socket-group", "", "")
	fs.IntVar(&v.mtu, "mtu", 1500, "")
	fs.DurationVar(&v.lldp, "lldp-interval", 30*time.Second, "")
	fs.BoolVar(&v.flood, "flood", false, "")
	fs.BoolVar(&v.check, "check", false, "")
	fs.SetAnnotation("check", NotInFile, []string{"a one-off command"})
	return fs
}

func write(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "prog.conf")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestApplySettings(t *testing.T) {
	p := write(t, `# vswitchd settings
uplink = eth1

mtu 9000            # jumbo
  --lldp-interval=10s
socket-group = "lib virt"   # quoted: blanks kept
metrics =
flood
`)
	var v vals
	fs := flags(&v)
	origins, err := Apply(fs, p, false)
	if err != nil {
		t.Fatal(err)
	}
	want := vals{uplink: "eth1", mtu: 9000, lldp: 10 * time.Second, group: "lib virt", metrics: "", flood: true}
	if v != want {
		t.Errorf("got %+v, want %+v", v, want)
	}
	if origins["mtu"] != p+":4" || origins["flood"] != p+":8" || len(origins) != 6 {
		t.Errorf("origins %v", origins)
	}
}

// A flag given on the command line wins over the file; the file's other
// settings still apply.
func TestCommandLineWins(t *testing.T) {
	p := write(t, "uplink = eth1\nmtu = 9000\n")
	var v vals
	fs := flags(&v)
	if err := fs.Parse([]string{"--mtu", "1600"}); err != nil {
		t.Fatal(err)
	}
	origins, err := Apply(fs, p, false)
	if err != nil {
		t.Fatal(err)
	}
	if v.mtu != 1600 || v.uplink != "eth1" {
		t.Errorf("mtu %d uplink %q: want the command line's 1600 and the file's eth1", v.mtu, v.uplink)
	}
	if _, ok := origins["mtu"]; ok {
		t.Error("mtu's origin is the file, but the command line set it")
	}
}

// A file that an editor saved with a UTF-8 byte order mark (Notepad does)
// reads as the same file without it; a BOM anywhere else is no blank.
func TestByteOrderMark(t *testing.T) {
	p := write(t, "\ufeffuplink = eth1\r\nmtu = 9000\r\n")
	var v vals
	origins, err := Apply(flags(&v), p, false)
	if err != nil {
		t.Fatal(err)
	}
	if v.uplink != "eth1" || v.mtu != 9000 || origins["uplink"] != p+":1" {
		t.Errorf("uplink %q mtu %d origins %v: want eth1 and 9000, uplink from line 1", v.uplink, v.mtu, origins)
	}
	p = write(t, "\ufeff# settings\n\ufeffuplink = eth1\n")
	if _, err := Apply(flags(&v), p, false); err == nil || !strings.Contains(err.Error(), p+`:2: unknown setting "\ufeffuplink"`) {
		t.Errorf("a BOM on line 2: %v", err)
	}
}

func TestMissingFile(t *testing.T) {
	var v vals
	missing := filepath.Join(t.TempDir(), "none.conf")
	if o, err := Apply(flags(&v), missing, true); err != nil || len(o) != 0 {
		t.Errorf("optional missing file: %v, %v", o, err)
	}
	if _, err := Apply(flags(&v), missing, false); err == nil || !strings.Contains(err.Error(), "none.conf") {
		t.Errorf("required missing file: %v", err)
	}
	if _, err := Apply(flags(&v), t.TempDir(), true); err == nil {
		t.Error("a directory as config file is no error")
	}
}

func TestBadFilesNameFileAndLine(t *testing.T) {
	for _, tc := range []struct {
		text, want string
	}{
		{"upink = eth1", `:1: unknown setting "upink" (settings are prog's long flag names: see prog --help)`},
		{"# c\nmtu = big", `:2: invalid argument "big" for "--mtu" flag`},
		{"mtu = 1\nmtu = 2", ":2: mtu is set twice (first at line 1)"},
		{"\n\nmtu", ":3: mtu needs a value (mtu = VALUE)"},
		{"check", ":1: check cannot be set in the file (a one-off command): give --check on the command line"},
		{"uplink = eth1 eth2", `:1: uplink: one value per setting, got "eth1 eth2"`},
		{`uplink = "eth1`, ":1: uplink: unterminated or invalid quoted value"},
		{`uplink = "eth1" x`, `:1: uplink: unexpected "x" after the quoted value`},
		{"= eth1", ":1: a setting needs a name"},
		{"lldp-interval = soon", `:1: invalid argument "soon" for "--lldp-interval" flag`},
		{"flood = maybe", `:1: invalid argument "maybe" for "--flood" flag`},
		{strings.Repeat("x", 70000), ":1: bufio.Scanner: token too long"},
		{"\x00\x01binary", `:1: unknown setting`},
	} {
		p := write(t, tc.text)
		var v vals
		_, err := Apply(flags(&v), p, false)
		if err == nil || !strings.Contains(err.Error(), p+tc.want) {
			t.Errorf("%.40q: %v, want %q", tc.text, err, p+tc.want)
		}
	}
}

func TestParseLine(t *testing.T) {
	for _, tc := range []struct {
		line, name, value string
		has               bool
	}{
		{"", "", "", false},
		{"   # only a comment", "", "", false},
		{"flood", "flood", "", false},
		{"flood # on", "flood", "", false},
		{"metrics = # off", "metrics", "", true},
		{"libvirt=qemu:///system", "libvirt", "qemu:///system", true},
		{"state\t/var/lib/x.db", "state", "/var/lib/x.db", true},
		{"drop = a#b", "drop", "a#b", true},
		{`g = "a \"b\""`, "g", `a "b"`, true},
	} {
		name, value, has, err := parseLine(tc.line)
		if err != nil || name != tc.name || value != tc.value || has != tc.has {
			t.Errorf("%q: %q %q %v %v; want %q %q %v", tc.line, name, value, has, err, tc.name, tc.value, tc.has)
		}
	}
}
