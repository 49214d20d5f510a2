package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// complete runs `vswctl [--socket SOCK] __complete ARGS...` as the shell
// scripts do and returns the candidates (without descriptions) and the
// directive line.
func complete(t *testing.T, sock string, args ...string) (names, descs []string, directive string) {
	t.Helper()
	r := vswctl(t, sock, append([]string{"__complete"}, args...)...)
	if r.code != 0 {
		t.Fatalf("__complete %q: exit %d, stderr %q", args, r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	directive = lines[len(lines)-1]
	for _, l := range lines[:len(lines)-1] {
		n, d, _ := strings.Cut(l, "\t")
		names = append(names, n)
		descs = append(descs, d)
	}
	return names, descs, directive
}

// ShellCompDirectiveNoFileComp, as __complete prints it.
const noFiles = ":4"

func TestCompletePortNames(t *testing.T) {
	_, sock := daemon(t)
	vswctl(t, sock, "add-port", "vnet1", "--vlan", "100").expect(t, 0, "")
	vswctl(t, sock, "add-port", "vnet2", "--trunk", "10,20-30", "--native-vlan", "10").expect(t, 0, "")
	vswctl(t, sock, "add-port", "tap9", "--vlan", "200", "--svid", "7").expect(t, 0, "")

	for _, c := range []struct {
		args  []string
		names string
	}{
		{[]string{"del-port", ""}, "tap9 vnet1 vnet2"},
		{[]string{"del-port", "vn"}, "vnet1 vnet2"},
		{[]string{"set-port", "t"}, "tap9"},
		{[]string{"stats", ""}, "tap9 vnet1 vnet2"},
		{[]string{"capture", ""}, "tap9 vnet1 vnet2 eth0"}, // and the uplink
		{[]string{"capture", "e"}, "eth0"},
		{[]string{"del-port", "vnet1", ""}, ""}, // one port only
		{[]string{"del-port", "x"}, ""},
		{[]string{"add-port", ""}, ""}, // a new port: not one of the daemon's
		{[]string{"fdb", "--vlan", ""}, "10 100 200"},
		{[]string{"add-port", "vnet3", "--vlan", "1"}, "10 100"},
		{[]string{"set-port", "vnet1", "--migration", ""}, "incoming outgoing none"},
		{[]string{"-o", ""}, "table json"},
		{[]string{"list-ports", "--output", "j"}, "json"},
	} {
		names, _, dir := complete(t, sock, c.args...)
		if got := strings.Join(names, " "); got != c.names {
			t.Errorf("vswctl %s<TAB>: %q, want %q", strings.Join(c.args, " "), got, c.names)
		}
		if dir != noFiles {
			t.Errorf("vswctl %s<TAB>: directive %s, want %s (no file names)", strings.Join(c.args, " "), dir, noFiles)
		}
	}
	// Descriptions say what each port is.
	names, descs, _ := complete(t, sock, "del-port", "")
	want := map[string]string{"vnet1": "vlan 100, absent", "vnet2": "trunk 10,20-30, absent", "tap9": "vlan 200 svid 7, absent"}
	for i, n := range names {
		if descs[i] != want[n] {
			t.Errorf("%s: description %q, want %q", n, descs[i], want[n])
		}
	}
}

// With the daemon down a Tab offers nothing, at once, and no error.
func TestCompleteDaemonDown(t *testing.T) {
	dead := filepath.Join(t.TempDir(), "nobody.sock")
	for _, args := range [][]string{{"del-port", ""}, {"capture", ""}, {"fdb", "--vlan", ""}} {
		names, _, dir := complete(t, dead, args...)
		if len(names) != 0 || dir != noFiles {
			t.Errorf("vswctl %s<TAB> with no daemon: %q %s, want nothing and no files", strings.Join(args, " "), names, dir)
		}
	}
}

// The completion command is listed in help, and writes each shell's script.
func TestCompletionCommand(t *testing.T) {
	r := vswctl(t, "", "--help")
	if !strings.Contains(r.stdout, "\n  completion ") {
		t.Errorf("vswctl --help does not list completion:\n%s", r.stdout)
	}
	for shell, want := range map[string]string{
		"bash": "complete -o default -F __start_vswctl vswctl",
		"zsh":  "#compdef vswctl",
		"fish": "complete -c vswctl",
	} {
		r := vswctl(t, "", "completion", shell)
		r.expect(t, 0, "")
		if !strings.Contains(r.stdout, want) || !strings.Contains(r.stdout, "__complete") {
			t.Errorf("completion %s lacks %q or the __complete call", shell, want)
		}
	}
}
