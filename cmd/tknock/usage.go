package main

import (
	"bytes"
	"io"
	"strings"

	"github.com/alecthomas/kong"
)

// usageHelp is kong's help, with the usage line showing required flags of
// one xor group as the alternatives they are: kong lists them one after the
// other, which reads as if all were needed
// ("--uri=- --file=FILE --qr=IMAGE" becomes "(--uri=- | --file=FILE | --qr=IMAGE)").
func usageHelp(options kong.HelpOptions, ctx *kong.Context) error {
	var buf bytes.Buffer
	stdout := ctx.Stdout
	ctx.Stdout = &buf
	err := kong.DefaultHelpPrinter(options, ctx)
	ctx.Stdout = stdout
	if err != nil {
		return err
	}
	help := buf.String()
	if node := ctx.Selected(); node != nil {
		help = alternatives(node, help)
	}
	_, err = io.WriteString(stdout, help)
	return err
}

// alternatives rewrites the first listing of each xor group's required
// flags in help.
func alternatives(node *kong.Node, help string) string {
	var groups []string
	flags := map[string][]string{}
	for _, group := range node.AllFlags(true) {
		for _, f := range group {
			if !f.Required || len(f.Xor) == 0 {
				continue
			}
			x := f.Xor[0]
			if _, ok := flags[x]; !ok {
				groups = append(groups, x)
			}
			flags[x] = append(flags[x], f.Summary())
		}
	}
	for _, x := range groups {
		if fs := flags[x]; len(fs) > 1 {
			help = strings.Replace(help, strings.Join(fs, " "), "("+strings.Join(fs, " | ")+")", 1)
		}
	}
	return help
}
