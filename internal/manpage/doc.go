// Package manpage writes Unix manual pages (roff, the man(7) macros) for
// vswitch's programs: vswctl's from its cobra command tree, one page per
// command as git and cobra's own generator do (vswctl(1),
// vswctl-add-port(1), ...), and vswitchd(8) from its pflag.FlagSet and a
// few sections of prose.
//
// The text it is given is the programs' own help: a command's Short becomes
// the NAME line, Long the DESCRIPTION, Example the EXAMPLES, each flag's
// usage an OPTIONS entry (with the `NAME` of its value and its default, as
// --help shows them). So a page never says something --help does not, and
// there is nothing to keep in step by hand. Help text is plain text, not
// markup: a blank line starts a new paragraph, and lines indented by
// whitespace (examples, XML) are kept as they are, in a literal block.
// Everything else is filled by the formatter.
//
// Text is escaped for roff (backslashes, a leading dot or quote, and every
// '-' as \- so that options read and paste as ASCII minus signs), so any
// help string renders as written: man --warnings and lintian find nothing
// to complain about.
//
// cobra's own generator (github.com/spf13/cobra/doc) would bring three
// modules (go-md2man, blackfriday, yaml.v3), treats help text as markdown,
// and renders cobra commands only: vswitchd has a bare FlagSet.
//
// The pages are written by `vswctl __man DIR` and `vswitchd --man` (both
// hidden), which `make man` runs; `make install` and `make deb` install
// them.
package manpage
