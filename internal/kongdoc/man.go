package kongdoc

import (
	"fmt"
	"io"
	"strings"

	"github.com/alecthomas/kong"
)

// ManCommand is the hidden first argument that makes a program print its
// man page (see Man); `make package` runs it.
const ManCommand = "__man"

// Page is what a man page needs besides the model.
type Page struct {
	Section string   // "1" for a user command, "8" for a daemon
	Source  string   // the footer's source, e.g. "tknock v0.3.1"
	Extra   []string // more sections, roff source each (".SH FILES\n...")
	SeeAlso []string // "tknockd(8)"
}

// Man writes the man page (roff, man macros) of the program parsed by p:
// the description, the global flags, and every visible command with its
// arguments and flags, as --help shows them.
func Man(w io.Writer, p *kong.Kong, page Page) error {
	app := p.Model
	var b strings.Builder
	name := app.Name
	fmt.Fprintf(&b, ".TH %s %s \"\" %q \"%s\"\n", strings.ToUpper(name), page.Section, page.Source, manual(page.Section))
	b.WriteString(".SH NAME\n")
	summary, rest, _ := strings.Cut(strings.TrimSpace(app.Help), "\n")
	fmt.Fprintf(&b, "%s \\- %s\n", esc(name), esc(strings.TrimSuffix(strings.TrimSpace(summary), ".")))
	b.WriteString(".SH SYNOPSIS\n")
	fmt.Fprintf(&b, ".B %s\n[\\fIflags\\fR] \\fIcommand\\fR [\\fIarguments\\fR]\n", esc(name))
	if rest = strings.Trim(rest, "\n"); strings.TrimSpace(rest) != "" {
		b.WriteString(".SH DESCRIPTION\n")
		text(&b, rest)
	}
	b.WriteString(".SH OPTIONS\n")
	flags(&b, app.Flags)
	b.WriteString(".SH COMMANDS\n")
	var walk func(n *kong.Node)
	walk = func(n *kong.Node) {
		for _, c := range n.Children {
			if c.Hidden || c.Type != kong.CommandNode {
				continue
			}
			fmt.Fprintf(&b, ".SS \"%s\"\n", esc(name+" "+c.Summary()))
			text(&b, c.Help)
			if c == n.DefaultCmd {
				b.WriteString(".PP\nThe default command: its arguments and flags may come without its name.\n")
			}
			if c.Detail != "" {
				text(&b, c.Detail)
			}
			for _, a := range c.Positional {
				fmt.Fprintf(&b, ".TP\n\\fI%s\\fR%s\n", esc("<"+a.Name+">"), map[bool]string{true: "", false: " (optional)"}[a.Required])
				text(&b, a.Help)
			}
			flags(&b, c.Flags)
			walk(c)
		}
	}
	walk(app.Node)
	for _, s := range page.Extra {
		b.WriteString(strings.TrimSuffix(s, "\n") + "\n")
	}
	if len(page.SeeAlso) > 0 {
		b.WriteString(".SH \"SEE ALSO\"\n")
		for i, s := range page.SeeAlso {
			ref, sec, _ := strings.Cut(strings.TrimSuffix(s, ")"), "(")
			sep := ","
			if i == len(page.SeeAlso)-1 {
				sep = ""
			}
			fmt.Fprintf(&b, ".BR %s (%s)%s\n", esc(ref), sec, sep)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func manual(section string) string {
	if section == "8" {
		return "System Administration"
	}
	return "User Commands"
}

// flags writes one .TP entry per visible flag.
func flags(b *strings.Builder, fs []*kong.Flag) {
	for _, f := range fs {
		if f.Hidden {
			continue
		}
		b.WriteString(".TP\n")
		if f.Short != 0 {
			fmt.Fprintf(b, "\\fB\\-%c\\fR, ", f.Short)
		}
		fmt.Fprintf(b, "\\fB%s\\fR", esc("--"+f.Name))
		if f.Negated {
			fmt.Fprintf(b, ", \\fB%s\\fR", esc("--no-"+f.Name))
		}
		if !f.IsBool() && !f.IsCounter() {
			fmt.Fprintf(b, "=\\fI%s\\fR", esc(f.FormatPlaceHolder()))
		}
		b.WriteString("\n")
		help := f.Help
		if len(f.Envs) > 0 {
			help += " (environment: " + strings.Join(f.Envs, ", ") + ")"
		}
		text(b, help)
	}
}

// text writes paragraphs; a paragraph with an indented line is kept as
// typed (examples), the others are filled.
func text(b *strings.Builder, s string) {
	for i, para := range strings.Split(strings.Trim(s, "\n"), "\n\n") {
		if i > 0 {
			b.WriteString(".PP\n")
		}
		lines := strings.Split(para, "\n")
		literal := false
		for _, l := range lines {
			if strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t") {
				literal = true
			}
		}
		if literal {
			b.WriteString(".nf\n")
		}
		for _, l := range lines {
			if !literal {
				l = strings.TrimSpace(l)
			}
			b.WriteString(line(esc(l)) + "\n")
		}
		if literal {
			b.WriteString(".fi\n")
		}
	}
}

// esc escapes text for roff: backslashes and hyphens (a plain "-" may be
// typeset as a hyphen, and copy-paste of a flag then fails).
func esc(s string) string {
	return strings.NewReplacer(`\`, `\e`, "-", `\-`).Replace(s)
}

// line keeps a text line from being read as a request.
func line(s string) string {
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		return `\&` + s
	}
	return s
}

// Hidden answers the command lines that --help does not list, which a
// program checks for before it parses args: CompleteCommand (the shell
// scripts' requests, answered by c) and ManCommand (the man page, for
// `make package`). handled is false for any other command line.
func Hidden(w io.Writer, args []string, c *Completer, page Page) (handled bool, err error) {
	if len(args) == 0 {
		return false, nil
	}
	switch args[0] {
	case CompleteCommand:
		return true, c.Run(w, args[1:])
	case ManCommand:
		return true, Man(w, c.Parser, page)
	}
	return false, nil
}
