// Package kongdoc derives, from a program's kong model, what installs with
// it: shell completion (bash, zsh, fish) and a man page. Both are made from
// the same model that parses the command line and prints --help, so they
// cannot drift from it.
//
// Completion works the way git's and cobra's do: the shell script is a
// small fixed function that runs the program itself as
//
//	PROGRAM __complete -- WORD... CURRENT
//
// with the words of the command line before the cursor, and offers the
// lines it prints. The program answers from its model (commands, flags,
// enum values) and from Predictors (profile names, say), so the script
// needs no update when a command or flag changes.
package kongdoc

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/alecthomas/kong"
)

// CompleteCommand is the hidden first argument that asks a program for
// completions; programs check for it before parsing (see Completer.Run).
const CompleteCommand = "__complete"

// FilesDirective is the line Complete's output starts with when the word
// being completed is a file name: the shell then completes file names
// itself. No candidate starts with ':'.
const FilesDirective = ":files"

// Predictor returns the candidates for a value, given the partial word
// (candidates not starting with it are dropped afterwards anyway).
type Predictor func(prefix string) []string

// Completer completes the command lines of one kong application.
type Completer struct {
	Parser *kong.Kong
	// Predictors, by value: "--NAME" for a flag (any command), and
	// "COMMAND <NAME>" for a positional argument, COMMAND being the
	// command's path without the program name ("knock <target>",
	// "remove <name>").
	Predictors map[string]Predictor
}

// Complete returns the candidates for the last of words (the word under
// the cursor, "" for a new word); the words before it are the command
// line after the program name. files reports that the word is a file
// name, which the shell completes better.
func (c *Completer) Complete(words []string) (cands []string, files bool) {
	if len(words) == 0 {
		words = []string{""}
	}
	done, cur := words[:len(words)-1], words[len(words)-1]

	// A value after "--flag=".
	if strings.HasPrefix(cur, "--") {
		if name, val, ok := strings.Cut(cur[2:], "="); ok {
			f := c.flag(done, name, 0)
			if f == nil {
				return nil, false
			}
			vals, files := c.values(f.Value, "--"+f.Name, val)
			for i := range vals {
				vals[i] = "--" + name + "=" + vals[i]
			}
			return vals, files
		}
	}
	// A value after "--flag" or "-f" that takes one.
	if n := len(done); n > 0 && !slices.Contains(done, "--") {
		last := done[n-1]
		var f *kong.Flag
		switch {
		case strings.HasPrefix(last, "--") && len(last) > 2 && !strings.Contains(last, "="):
			f = c.flag(done[:n-1], last[2:], 0)
		case len(last) == 2 && last[0] == '-' && last[1] != '-':
			f = c.flag(done[:n-1], "", rune(last[1]))
		}
		if f != nil && !f.IsBool() && !f.IsCounter() {
			return c.values(f.Value, "--"+f.Name, cur)
		}
	}

	node, npos, ok := c.trace(done)
	if !ok {
		return nil, false
	}
	if strings.HasPrefix(cur, "-") && !slices.Contains(done, "--") {
		for _, f := range c.flags(node) {
			cands = append(cands, "--"+f.Name)
			if f.Negated {
				cands = append(cands, "--no-"+f.Name)
			}
		}
		return filter(cands, cur), false
	}
	// Commands, where one may come, then the next positional's values.
	if npos == 0 {
		for _, ch := range node.Children {
			if ch.Type == kong.CommandNode && !ch.Hidden {
				cands = append(cands, ch.Name)
			}
		}
	}
	target, i := node, npos
	if d := node.DefaultCmd; d != nil && d.Tag.Default == "withargs" && npos == 0 {
		target = d
	}
	if i < len(target.Positional) {
		p := target.Positional[i]
		vals, files := c.values(p, positionalKey(target, p), cur)
		if files && len(cands) == 0 {
			return nil, true
		}
		cands = append(cands, vals...)
	}
	return filter(cands, cur), false
}

// trace follows the finished words through the model and returns the
// command reached and how many of its positional arguments are filled.
func (c *Completer) trace(done []string) (node *kong.Node, npos int, ok bool) {
	kctx, err := kong.Trace(c.Parser, done)
	if err != nil || kctx.Error != nil {
		return nil, 0, false
	}
	node = c.Parser.Model.Node
	for _, p := range kctx.Path {
		switch {
		case p.Command != nil && p.Command != node:
			// maybeSelectDefault adds the default command when no
			// word named one: stay at its parent, which offers both
			// the commands and the default command's arguments.
			if p.Command == node.DefaultCmd && p.Parent == node.DefaultCmd {
				continue
			}
			node, npos = p.Command, 0
		case p.Positional != nil:
			npos++
		}
	}
	return node, npos, true
}

// flag finds the flag called name (or short) valid after the words done.
func (c *Completer) flag(done []string, name string, short rune) *kong.Flag {
	node, _, ok := c.trace(done)
	if !ok {
		return nil
	}
	for _, f := range c.flags(node) {
		if (name != "" && f.Name == name) || (short != 0 && f.Short == short) {
			return f
		}
	}
	return nil
}

// flags returns the visible flags that node and its parents accept
// (kong's flags are inherited by subcommands), with those of a "withargs"
// default command, which its parent accepts too.
func (c *Completer) flags(node *kong.Node) []*kong.Flag {
	var out []*kong.Flag
	groups := node.AllFlags(true)
	if d := node.DefaultCmd; d != nil && d.Tag.Default == "withargs" {
		groups = append(groups, d.Flags)
	}
	for _, g := range groups {
		for _, f := range g {
			if !f.Hidden {
				out = append(out, f)
			}
		}
	}
	return out
}

// values returns the candidates for a flag's or positional's value.
func (c *Completer) values(v *kong.Value, key, prefix string) ([]string, bool) {
	if p, ok := c.Predictors[key]; ok {
		return filter(p(prefix), prefix), false
	}
	if v.Enum != "" {
		return filter(v.EnumSlice(), prefix), false
	}
	if isFile(v) {
		return nil, true
	}
	return nil, false
}

func isFile(v *kong.Value) bool {
	if v.Tag != nil {
		switch v.Tag.Type {
		case "path", "existingfile", "existingdir", "filecontent":
			return true
		}
	}
	if v.Flag != nil {
		switch v.Flag.PlaceHolder {
		case "FILE", "IMAGE", "DIR":
			return true
		}
	}
	return false
}

func positionalKey(cmd *kong.Node, p *kong.Value) string {
	return strings.TrimSpace(commandPath(cmd) + " <" + p.Name + ">")
}

// commandPath is node's command path without the program name.
func commandPath(node *kong.Node) string {
	var names []string
	for n := node; n != nil && n.Type != kong.ApplicationNode; n = n.Parent {
		names = append(names, n.Name)
	}
	slices.Reverse(names)
	return strings.Join(names, " ")
}

func filter(cands []string, prefix string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range cands {
		if strings.HasPrefix(s, prefix) && !seen[s] && !strings.HasPrefix(s, ":") && !strings.ContainsAny(s, "\n\r") {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// Run answers a completion request: args are the arguments after
// CompleteCommand (a leading "--" is dropped). It writes FilesDirective, or
// the candidates, one per line.
func (c *Completer) Run(w io.Writer, args []string) error {
	if err := c.Check(); err != nil {
		return err
	}
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	cands, files := c.Complete(args)
	if files {
		_, err := fmt.Fprintln(w, FilesDirective)
		return err
	}
	for _, s := range cands {
		if _, err := fmt.Fprintln(w, s); err != nil {
			return err
		}
	}
	return nil
}

// Check reports a predictor whose key names no flag or positional
// argument of the model (a renamed one, say), which would silently
// complete nothing.
func (c *Completer) Check() error {
	known := map[string]bool{}
	var walk func(n *kong.Node)
	walk = func(n *kong.Node) {
		for _, f := range n.Flags {
			known["--"+f.Name] = true
		}
		for _, p := range n.Positional {
			known[positionalKey(n, p)] = true
		}
		for _, ch := range n.Children {
			walk(ch)
		}
	}
	walk(c.Parser.Model.Node)
	for k := range c.Predictors {
		if !known[k] {
			return fmt.Errorf("completion predictor %q: no such flag or argument in %s's command line", k, c.Parser.Model.Name)
		}
	}
	return nil
}
