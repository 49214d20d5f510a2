package manpage

import (
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Extra adds to a command's page what --help does not say (EXIT STATUS,
// ENVIRONMENT, FILES, more SEE ALSO, ...).
type Extra func(cmd *cobra.Command, p *Page)

// Tree returns the pages of root and of every available command under it
// (not hidden, not deprecated, not the help command): one page per
// command, named by its path with '-' (vswctl-add-port), in section 1.
func Tree(root *cobra.Command, h Header, extra Extra) []*Page {
	var pages []*Page
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		pages = append(pages, Command(c, h, extra))
		for _, sub := range c.Commands() {
			if available(sub) {
				walk(sub)
			}
		}
	}
	walk(root)
	return pages
}

// Command returns cmd's page: NAME from Short, SYNOPSIS from its usage
// line, DESCRIPTION from Long (or Short), OPTIONS and GLOBAL OPTIONS from
// its flags, COMMANDS for its subcommands, EXAMPLES, the extra sections,
// and SEE ALSO its parent and subcommands.
func Command(cmd *cobra.Command, h Header, extra Extra) *Page {
	p := &Page{
		Header:      h,
		Name:        pageName(cmd),
		Section:     "1",
		Title:       cmd.Short,
		Description: cmd.Long,
	}
	if p.Description == "" {
		p.Description = cmd.Short
	}
	// The synopsis: the usage line as --help prints it, and for a command
	// with subcommands "PATH [flags] COMMAND".
	if cmd.Runnable() && !cmd.HasAvailableSubCommands() {
		p.Synopsis = append(p.Synopsis, cmd.UseLine())
	}
	if cmd.HasAvailableSubCommands() {
		p.Synopsis = append(p.Synopsis, cmd.CommandPath()+" [flags] COMMAND [ARGS]")
	}
	if len(cmd.Aliases) > 0 {
		p.Description += "\n\nAlso called: " + strings.Join(cmd.Aliases, ", ") + "."
	}
	p.Options = []Options{
		{Title: "Options", Flags: withoutHelp(cmd.NonInheritedFlags())},
		{Title: "Global options", Flags: withoutHelp(cmd.InheritedFlags())},
	}
	var subs []Item
	for _, sub := range cmd.Commands() {
		if available(sub) {
			subs = append(subs, Item{Tag: sub.Name(), Text: sub.Short + " (see " + pageName(sub) + "(1))."})
			p.SeeAlso = append(p.SeeAlso, pageName(sub)+"(1)")
		}
	}
	if len(subs) > 0 {
		p.Sections = append(p.Sections, Section{Title: "Commands", Items: subs})
	}
	if cmd.Example != "" {
		p.Sections = append(p.Sections, Section{Title: "Examples", Text: cmd.Example})
	}
	if parent := cmd.Parent(); parent != nil {
		p.SeeAlso = append([]string{pageName(parent) + "(1)"}, p.SeeAlso...)
	}
	if extra != nil {
		extra(cmd, p)
	}
	return p
}

// withoutHelp is fs without cobra's --help, which every command has and
// a manual page need not list.
func withoutHelp(fs *pflag.FlagSet) *pflag.FlagSet {
	out := pflag.NewFlagSet(fs.Name(), pflag.ContinueOnError)
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Name != "help" {
			out.AddFlag(f)
		}
	})
	return out
}

func pageName(cmd *cobra.Command) string {
	return strings.ReplaceAll(cmd.CommandPath(), " ", "-")
}

func available(c *cobra.Command) bool {
	return c.IsAvailableCommand() && c.Name() != "help"
}
