package manpage

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/spf13/pflag"
	"github.com/vswitch/vswitch/internal/version"
)

// Header is what every page of one build shares: the .TH line's date,
// source and manual.
type Header struct {
	Date   string // YYYY-MM-DD: the build's date, so that a rebuild is byte for byte the same
	Source string // e.g. "vswitch 0.0~git20261127.9cf0f38"
	Manual string // e.g. "vswitch Manual"
}

// Page is one manual page.
type Page struct {
	Header
	Name     string   // "vswctl-add-port"
	Section  string   // "1", "8"
	Title    string   // the NAME line after "name \-": "Add a VM port"
	Synopsis []string // usage lines, each starting with the command
	// Description is the DESCRIPTION section: plain text (see the package
	// documentation).
	Description string
	Options     []Options // OPTIONS, GLOBAL OPTIONS, ...
	Sections    []Section // the rest, in order (EXAMPLES, EXIT STATUS, ...)
	SeeAlso     []string  // "vswctl(1)", ...
}

// Options is a titled list of flags.
type Options struct {
	Title string
	Flags *pflag.FlagSet
}

// Section is a titled section of plain text; a Section with Items is a
// list of tagged paragraphs (COMMANDS: name, then what it does).
type Section struct {
	Title string
	Text  string
	Items []Item
}

// Item is one entry of a tagged list: the tag in bold, the text below it.
type Item struct {
	Tag, Text string
}

// FileName is the page's file name: NAME.SECTION.
func (p *Page) FileName() string { return p.Name + "." + p.Section }

// Render writes the page as roff.
func (p *Page) Render(w io.Writer) error {
	if p.Name == "" || p.Section == "" || p.Title == "" {
		return fmt.Errorf("manpage: page %q(%s) needs a name, a section and a title", p.Name, p.Section)
	}
	b := &bytes.Buffer{}
	fmt.Fprintf(b, ".TH %s %s %s %s %s\n", quote(strings.ToUpper(p.Name)), quote(p.Section),
		quote(p.Date), quote(p.Source), quote(p.Manual))
	// No hyphenation (a path or an option broken across lines would not
	// paste), ragged right (no wide gaps around long words).
	b.WriteString(".nh\n.ad l\n")
	b.WriteString(".SH NAME\n")
	fmt.Fprintf(b, "%s \\- %s\n", escape(p.Name), escape(strings.TrimSuffix(firstLine(p.Title), ".")))
	if len(p.Synopsis) > 0 {
		b.WriteString(".SH SYNOPSIS\n")
		for i, s := range p.Synopsis {
			if i > 0 {
				b.WriteString(".br\n")
			}
			cmd, rest, _ := strings.Cut(strings.TrimSpace(s), " ")
			fmt.Fprintf(b, "\\fB%s\\fR", escape(cmd))
			if rest != "" {
				fmt.Fprintf(b, " %s", escape(rest))
			}
			b.WriteString("\n")
		}
	}
	if strings.TrimSpace(p.Description) != "" {
		b.WriteString(".SH DESCRIPTION\n")
		text(b, p.Description, ".PP")
	}
	for _, o := range p.Options {
		if o.Flags == nil || !o.Flags.HasAvailableFlags() {
			continue
		}
		fmt.Fprintf(b, ".SH %s\n", quote(strings.ToUpper(o.Title)))
		flags(b, o.Flags)
	}
	for _, s := range p.Sections {
		if strings.TrimSpace(s.Text) == "" && len(s.Items) == 0 {
			continue
		}
		fmt.Fprintf(b, ".SH %s\n", quote(strings.ToUpper(s.Title)))
		if strings.TrimSpace(s.Text) != "" {
			text(b, s.Text, ".PP")
		}
		for _, it := range s.Items {
			fmt.Fprintf(b, ".TP\n\\fB%s\\fR\n", escape(it.Tag))
			text(b, it.Text, ".IP")
		}
	}
	if len(p.SeeAlso) > 0 {
		b.WriteString(".SH SEE ALSO\n")
		for i, s := range p.SeeAlso {
			sep := ",\n"
			if i == len(p.SeeAlso)-1 {
				sep = "\n"
			}
			// "vswctl-add-port(1)": the name in bold, the section roman.
			name, sect, ok := strings.Cut(s, "(")
			if ok {
				fmt.Fprintf(b, "\\fB%s\\fR(%s%s", escape(name), escape(sect), sep)
			} else {
				fmt.Fprintf(b, "%s%s", escape(s), sep)
			}
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

// WriteFiles renders each page into dir (created if needed) as
// NAME.SECTION and returns the paths written.
func WriteFiles(dir string, pages []*Page) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("manpage: %w", err)
	}
	var paths []string
	for _, p := range pages {
		var b bytes.Buffer
		if err := p.Render(&b); err != nil {
			return paths, err
		}
		path := filepath.Join(dir, p.FileName())
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			return paths, fmt.Errorf("manpage: %w", err)
		}
		paths = append(paths, path)
	}
	return paths, nil
}

// flags writes one .TP entry per visible flag, in the set's order (pflag
// sorts by name unless told otherwise).
func flags(b *bytes.Buffer, fs *pflag.FlagSet) {
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		b.WriteString(".TP\n")
		if f.Shorthand != "" && f.ShorthandDeprecated == "" {
			fmt.Fprintf(b, "\\fB\\-%s\\fR, ", escape(f.Shorthand))
		}
		fmt.Fprintf(b, "\\fB\\-\\-%s\\fR", escape(f.Name))
		name, usage := pflag.UnquoteUsage(f)
		switch {
		case name == "":
		case f.NoOptDefVal != "":
			fmt.Fprintf(b, "[=\\fI%s\\fR]", escape(name))
		default:
			fmt.Fprintf(b, " \\fI%s\\fR", escape(name))
		}
		b.WriteString("\n")
		if !zeroDefault(f.DefValue) {
			usage = strings.TrimRight(usage, ". ") + " (default: " + f.DefValue + ")"
		}
		if f.Deprecated != "" {
			usage += " Deprecated: " + f.Deprecated
		}
		text(b, usage, ".IP")
	})
}

// zeroDefault reports whether a flag's default says nothing worth
// printing, as pflag's own usage decides for its value types.
func zeroDefault(def string) bool {
	switch def {
	case "", "false", "0", "0s", "[]", "<nil>":
		return true
	}
	return false
}

// text writes plain text: paragraphs filled by the formatter, separated by
// para (.PP at the top level of a section, .IP inside a list entry, so that
// the entry's indentation holds), indented lines as literal blocks.
func text(b *bytes.Buffer, s, para string) {
	sc := bufio.NewScanner(strings.NewReader(strings.Trim(s, "\n")))
	sc.Buffer(nil, 1<<20)
	var (
		literal bool // inside .nf
		started bool // something written since the last break
		gap     bool // a blank line seen since the last text
	)
	for sc.Scan() {
		line := strings.TrimRightFunc(sc.Text(), unicode.IsSpace)
		switch {
		case line == "":
			gap = true
			continue
		case line[0] == ' ' || line[0] == '\t':
			if !literal {
				if started {
					b.WriteString(para + "\n")
				}
				b.WriteString(".RS 4\n.nf\n")
				literal = true
			} else if gap {
				b.WriteString("\n")
			}
			b.WriteString(escapeLine(dedent(line)) + "\n")
		default:
			if literal {
				b.WriteString(".fi\n.RE\n")
				literal = false
				b.WriteString(para + "\n")
			} else if gap && started {
				b.WriteString(para + "\n")
			}
			b.WriteString(escapeLine(line) + "\n")
		}
		started, gap = true, false
	}
	if literal {
		b.WriteString(".fi\n.RE\n")
	}
}

// dedent removes the two spaces help text indents examples by (a tab
// counts as one level); deeper indentation is kept.
func dedent(line string) string {
	switch {
	case strings.HasPrefix(line, "\t"):
		return line[1:]
	case strings.HasPrefix(line, "  "):
		return line[2:]
	}
	return strings.TrimLeft(line, " ")
}

// escapeLine escapes a line of text that starts a roff input line: a
// leading '.' or '\” would be read as a request.
func escapeLine(s string) string {
	s = escape(s)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// escape makes s print as written: backslashes as \e, '-' as \- (a minus,
// which is what an option is typed with), and the characters groff would
// turn into typographic ones.
func escape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '\\':
			b.WriteString(`\e`)
		case '-':
			b.WriteString(`\-`)
		case '\'':
			b.WriteString(`\(aq`)
		case '`':
			b.WriteString(`\(ga`)
		case '^':
			b.WriteString(`\(ha`)
		case '~':
			b.WriteString(`\(ti`)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// quote makes s one argument of a request (.TH, .SH).
func quote(s string) string {
	return `"` + strings.ReplaceAll(escape(s), `"`, `\(dq`) + `"`
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(l)
}

// BuildHeader is the header of this build's pages: its version
// (internal/version) as the source and its build date as the page date.
func BuildHeader() Header {
	in := version.Get()
	date := in.BuildDate
	if len(date) >= len("2006-01-02") {
		date = date[:len("2006-01-02")]
	}
	return Header{Date: date, Source: "vswitch " + in.Version, Manual: "vswitch Manual"}
}
