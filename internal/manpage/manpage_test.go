package manpage

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

var hdr = Header{Date: "2026-11-27", Source: "vswitch 1.0", Manual: "vswitch Manual"}

func testFlags() *pflag.FlagSet {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs.String("uplink", "", "uplink `IF` facing the bridge (required)")
	fs.String("mode", "vepa", "forwarding mode: vepa or veb")
	fs.Duration("lldp-interval", 30*time.Second, "LLDP interval")
	fs.Int("mtu", 1500, "MTU of the VM ports")
	fs.Int("queues", 0, "RX workers (0: one per CPU)")
	fs.BoolP("verbose", "v", false, "say more")
	fs.String("secret", "", "not for operators")
	_ = fs.MarkHidden("secret")
	return fs
}

func render(t *testing.T, p *Page) string {
	t.Helper()
	var b bytes.Buffer
	if err := p.Render(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestRenderRoff(t *testing.T) {
	p := &Page{
		Header: hdr, Name: "vswitchd", Section: "8", Title: "the vswitch daemon.",
		Synopsis:    []string{"vswitchd --uplink IF [--mode vepa|veb]", "vswitchd --check"},
		Description: "First paragraph,\nstill the first.\n\nSecond one.\n  indented: literal\n\n  more literal\nback to text",
		Options:     []Options{{Title: "Options", Flags: testFlags()}},
		Sections:    []Section{{Title: "Exit status", Items: []Item{{Tag: "0", Text: "ok"}}}, {Title: "Empty"}},
		SeeAlso:     []string{"vswctl(1)", "systemd.service(5)"},
	}
	out := render(t, p)
	for _, want := range []string{
		`.TH "VSWITCHD" "8" "2026\-11\-27" "vswitch 1.0" "vswitch Manual"`,
		".SH NAME\nvswitchd \\- the vswitch daemon\n", // the trailing dot goes
		".SH SYNOPSIS\n\\fBvswitchd\\fR \\-\\-uplink IF [\\-\\-mode vepa|veb]\n.br\n\\fBvswitchd\\fR \\-\\-check\n",
		".SH DESCRIPTION\nFirst paragraph,\nstill the first.\n.PP\nSecond one.\n.PP\n.RS 4\n.nf\nindented: literal\n\nmore literal\n.fi\n.RE\n.PP\nback to text\n",
		".TP\n\\fB\\-\\-uplink\\fR \\fIIF\\fR\nuplink IF facing the bridge (required)\n",
		".TP\n\\fB\\-\\-mode\\fR \\fIstring\\fR\nforwarding mode: vepa or veb (default: vepa)\n",
		"\\fB\\-\\-lldp\\-interval\\fR \\fIduration\\fR\nLLDP interval (default: 30s)\n",
		"MTU of the VM ports (default: 1500)\n",
		"RX workers (0: one per CPU)\n", // a zero default is not printed
		".TP\n\\fB\\-v\\fR, \\fB\\-\\-verbose\\fR\nsay more\n",
		".SH \"EXIT STATUS\"\n.TP\n\\fB0\\fR\nok\n",
		".SH SEE ALSO\n\\fBvswctl\\fR(1),\n\\fBsystemd.service\\fR(5)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("page lacks %q:\n%s", want, out)
		}
	}
	for _, bad := range []string{"secret", "EMPTY", "(default: 0)", "(default: false)"} {
		if strings.Contains(out, bad) {
			t.Errorf("page has %q:\n%s", bad, out)
		}
	}
}

func TestRenderNeedsNameSectionTitle(t *testing.T) {
	for _, p := range []*Page{{Section: "1", Title: "x"}, {Name: "x", Title: "x"}, {Name: "x", Section: "1"}} {
		if err := p.Render(&bytes.Buffer{}); err == nil {
			t.Errorf("Render(%+v) = nil, want an error", p)
		}
	}
}

// Text that means something to roff prints as written: formatted with
// groff (as man does), every line of a literal block comes out unchanged,
// and groff warns about nothing.
func TestEscapingThroughGroff(t *testing.T) {
	groff, err := exec.LookPath("groff")
	if err != nil {
		msg := "groff not installed (Debian: groff-base; make deps installs it)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	lines := []string{
		`.TH not a request`,
		`'also not a request`,
		`back\slash \fB not bold \n`,
		`exec /usr/bin/vswctl --socket /run/x.sock libvirt-hook "$@"`,
		`<vsw:port mac="52:54:00:12:34:56" vlan='100'/> ~ ^ ` + "`x`",
	}
	var lit strings.Builder
	for _, l := range lines {
		lit.WriteString("  " + l + "\n")
	}
	p := &Page{Header: hdr, Name: "t", Section: "1", Title: "a test",
		Description: "Some text -- with dashes.\n.starts with a dot\n\n" + lit.String()}
	cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", "-rLL=200n", "-P-c", "-P-b", "-P-u")
	cmd.Stdin = strings.NewReader(render(t, p))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("groff: %v: %s", err, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Errorf("groff warns: %s", stderr.String())
	}
	// \- comes out as ASCII '-' (man's -Tutf8 default); compare per line.
	got := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		got[strings.TrimSpace(l)] = true
	}
	// Filled text: groff puts two spaces after a sentence's end.
	for _, l := range append(lines, "Some text -- with dashes.  .starts with a dot") {
		if !got[l] {
			t.Errorf("groff output lacks the line %q:\n%s", l, out)
		}
	}
}

func TestTree(t *testing.T) {
	root := &cobra.Command{Use: "tool", Short: "Do things", Long: "Tool does things."}
	root.PersistentFlags().String("socket", "/run/x.sock", "socket `PATH`")
	add := &cobra.Command{Use: "add NAME [flags]", Short: "Add one", Example: "  tool add x", Aliases: []string{"new"},
		Run: func(*cobra.Command, []string) {}}
	add.Flags().Int("vlan", 0, "`VID` to use")
	grp := &cobra.Command{Use: "grp", Short: "A group"}
	leaf := &cobra.Command{Use: "leaf", Short: "A leaf", Run: func(*cobra.Command, []string) {}}
	hidden := &cobra.Command{Use: "__secret", Short: "hidden", Hidden: true, Run: func(*cobra.Command, []string) {}}
	grp.AddCommand(leaf)
	root.AddCommand(add, grp, hidden)
	root.InitDefaultHelpCmd()
	root.InitDefaultHelpFlag()
	add.InitDefaultHelpFlag()

	var extraFor []string
	pages := Tree(root, hdr, func(c *cobra.Command, p *Page) {
		extraFor = append(extraFor, c.Name())
		if !c.HasParent() {
			p.SeeAlso = append(p.SeeAlso, "other(8)")
		}
	})
	var names []string
	byName := map[string]string{}
	for _, p := range pages {
		names = append(names, p.FileName())
		byName[p.Name] = render(t, p)
	}
	if got, want := strings.Join(names, " "), "tool.1 tool-add.1 tool-grp.1 tool-grp-leaf.1"; got != want {
		t.Fatalf("pages %s, want %s", got, want)
	}
	if len(extraFor) != 4 {
		t.Errorf("extra called for %v, want every page", extraFor)
	}
	for name, wants := range map[string][]string{
		"tool": {"\\fBtool\\fR [flags] COMMAND [ARGS]", ".SH \"COMMANDS\"\n.TP\n\\fBadd\\fR\nAdd one (see tool\\-add(1)).\n",
			"\\fBtool\\-add\\fR(1),\n\\fBtool\\-grp\\fR(1),\n\\fBother\\fR(8)\n", "Tool does things."},
		"tool-add": {".SH SYNOPSIS\n\\fBtool\\fR add NAME [flags]\n", ".SH \"OPTIONS\"\n.TP\n\\fB\\-\\-vlan\\fR \\fIVID\\fR\nVID to use\n",
			".SH \"GLOBAL OPTIONS\"\n.TP\n\\fB\\-\\-socket\\fR \\fIPATH\\fR\nsocket PATH (default: /run/x.sock)\n",
			"Also called: new.", ".SH \"EXAMPLES\"\n.RS 4\n.nf\ntool add x\n.fi\n.RE\n", ".SH SEE ALSO\n\\fBtool\\fR(1)\n"},
		"tool-grp-leaf": {"\\fBtool\\-grp\\fR(1)\n", ".SH DESCRIPTION\nA leaf\n"},
	} {
		for _, w := range wants {
			if !strings.Contains(byName[name], w) {
				t.Errorf("%s lacks %q:\n%s", name, w, byName[name])
			}
		}
	}
	for name, page := range byName {
		if strings.Contains(page, "secret") || regexp.MustCompile(`\\-\\-help`).MatchString(page) {
			t.Errorf("%s shows the hidden command or --help:\n%s", name, page)
		}
	}

	dir := filepath.Join(t.TempDir(), "man")
	paths, err := WriteFiles(dir, pages)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 4 {
		t.Fatalf("wrote %v", paths)
	}
	b, err := os.ReadFile(filepath.Join(dir, "tool-add.1"))
	if err != nil || string(b) != byName["tool-add"] {
		t.Errorf("tool-add.1 = %q, %v; want the rendered page", b, err)
	}
}
