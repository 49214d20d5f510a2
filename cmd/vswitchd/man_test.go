package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// vswitchd --man writes vswitchd(8): every flag --help lists (and only
// those), with the sections --help lacks; the page formats without a
// groff warning; a config file is not read for it; --help does not list
// --man, and the config file cannot set it.
func TestManPage(t *testing.T) {
	t.Setenv("VSWITCHD_SOCKET", "")
	var stdout, stderr bytes.Buffer
	bad := filepath.Join(t.TempDir(), "bad.conf")
	if err := os.WriteFile(bad, []byte("no-such-flag = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code := run([]string{"--man", "--config", bad}, &stdout, &stderr); code != 0 || stderr.Len() != 0 {
		t.Fatalf("vswitchd --man: exit %d, stderr %q", code, stderr.String())
	}
	page := stdout.String()
	for _, want := range []string{
		`.TH "VSWITCHD" "8" `,
		".SH NAME\nvswitchd \\- the vswitch daemon, an IEEE 802.1Qbg (VEPA) virtual switch\n",
		".SH SYNOPSIS\n\\fBvswitchd\\fR \\-\\-uplink IF",
		".br\n\\fBvswitchd\\fR [\\-\\-state PATH] \\-\\-check [\\-\\-salvage NEWFILE] | \\-\\-drop\\-port NAME\n.br\n\\fBvswitchd\\fR \\-\\-version\n",
		"\\fB\\-\\-socket\\fR \\fIPATH\\fR\nAPI unix socket PATH (env VSWITCHD_SOCKET) (default: /run/vswitchd/vswitchd.sock)\n",
		".SH \"CONFIGURATION FILE\"", "uplink = eth1", ".SH \"FILES\"\n.TP\n\\fB/etc/vswitch/vswitchd.conf\\fR",
		".SH \"EXIT STATUS\"", "\\fBvswctl\\fR(1)",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("vswitchd(8) lacks %q:\n%s", want, page)
		}
	}
	// The options are exactly --help's.
	var help, e bytes.Buffer
	run([]string{"--help"}, &help, &e)
	FlagSet().VisitAll(func(f *pflag.Flag) {
		inHelp := strings.Contains(help.String(), "--"+f.Name+" ")
		inPage := strings.Contains(page, "\\fB\\-\\-"+strings.ReplaceAll(f.Name, "-", "\\-")+"\\fR")
		if inHelp != inPage || f.Name == "man" && (inHelp || inPage) {
			t.Errorf("--%s: in --help %v, in the page %v", f.Name, inHelp, inPage)
		}
	})
	stdout.Reset()
	stderr.Reset()
	conf := filepath.Join(t.TempDir(), "man.conf")
	if err := os.WriteFile(conf, []byte("uplink = eth0\nman\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code := run([]string{"--config", conf}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), conf+":2") {
		t.Errorf("man in the config file: exit %d, stderr %q; want 2 naming %s:2", code, stderr.String(), conf)
	}
	if groff, err := exec.LookPath("groff"); err == nil {
		cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", "-z")
		cmd.Stdin = strings.NewReader(page)
		if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("groff -ww: %v\n%s", err, out)
		}
	}
}
