package main

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// vswctl __man DIR writes a page per visible command, with what --help
// says and the sections help does not have; the hidden commands have none
// and help does not list __man.
func TestManPages(t *testing.T) {
	t.Setenv("VSWITCHD_SOCKET", "")
	dir := filepath.Join(t.TempDir(), "man")
	r := vswctl(t, "", "__man", dir)
	r.expect(t, 0, "")
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	for _, want := range []string{"vswctl.1", "vswctl-add-port.1", "vswctl-set-port.1", "vswctl-del-port.1", "vswctl-list-ports.1",
		"vswctl-stats.1", "vswctl-fdb.1", "vswctl-vsis.1", "vswctl-status.1", "vswctl-capture.1", "vswctl-libvirt-hook.1",
		"vswctl-completion.1", "vswctl-completion-bash.1", "vswctl-completion-zsh.1", "vswctl-completion-fish.1"} {
		if !slices.Contains(names, want) {
			t.Errorf("no %s in %v", want, names)
		}
	}
	for _, n := range names {
		if strings.Contains(n, "__") || strings.Contains(n, "help") {
			t.Errorf("page %s for a hidden command", n)
		}
	}
	if !strings.HasPrefix(r.stdout, "wrote "+strconv.Itoa(len(names))+" manual pages to "+dir) {
		t.Errorf("stdout %q", r.stdout)
	}
	read := func(n string) string {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	root := read("vswctl.1")
	for _, want := range []string{
		".SH NAME\nvswctl \\- Control vswitchd, the 802.1Qbg VEPA virtual switch\n",
		"\\fB\\-\\-socket\\fR \\fIPATH\\fR\nvswitchd API socket PATH (env VSWITCHD_SOCKET) (default: /run/vswitchd/vswitchd.sock)\n",
		".SH \"EXIT STATUS\"", ".SH \"ENVIRONMENT\"\n.TP\n\\fBVSWITCHD_SOCKET\\fR", "\\fB/etc/libvirt/hooks/qemu.d/vswitch\\fR",
		"\\fBvswctl\\-add\\-port\\fR(1)", "\\fBvswitchd\\fR(8)",
	} {
		if !strings.Contains(root, want) {
			t.Errorf("vswctl.1 lacks %q:\n%s", want, root)
		}
	}
	add := read("vswctl-add-port.1")
	for _, want := range []string{".SH \"OPTIONS\"", "\\fB\\-\\-vlan\\fR \\fIVID\\fR", ".SH \"GLOBAL OPTIONS\"", ".SH \"EXAMPLES\"\n.RS 4\n.nf\nvswctl add\\-port vnet1"} {
		if !strings.Contains(add, want) {
			t.Errorf("vswctl-add-port.1 lacks %q:\n%s", want, add)
		}
	}
	if h := read("vswctl-libvirt-hook.1"); !strings.Contains(h, "/run/libvirt/qemu/DOMAIN.xml") || !strings.Contains(h, "<vsw:port mac=") {
		t.Errorf("vswctl-libvirt-hook.1 lacks the status file or the metadata example:\n%s", h)
	}
	if help := vswctl(t, "", "--help").stdout; strings.Contains(help, "__man") {
		t.Errorf("--help lists __man:\n%s", help)
	}
	vswctl(t, "", "__man").expect(t, 2, "needs a directory")
}
