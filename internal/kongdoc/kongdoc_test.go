package kongdoc

import (
	"slices"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

type toy struct {
	Debug bool   `short:"d" help:"Debug."`
	Dir   string `type:"path" help:"A directory."`

	Get struct {
		Name  string `arg:"" help:"What to get."`
		Color string `enum:"red,green" default:"red" help:"Colour."`
	} `cmd:"" default:"withargs" help:"Get a thing."`
	Put struct {
		Name string `arg:"" help:"What to put."`
		From string `placeholder:"FILE" help:"Read from FILE."`
	} `cmd:"" help:"Put a thing -- carefully.\n\n  put x --from y"`
	Hide struct{} `cmd:"" hidden:"" help:"Hidden."`
}

func toyParser(t *testing.T) *kong.Kong {
	t.Helper()
	p, err := kong.New(&toy{}, kong.Name("toy"), kong.Description("Toy program.\n\n.A line that starts with a dot."))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestComplete(t *testing.T) {
	c := &Completer{Parser: toyParser(t), Predictors: map[string]Predictor{
		"get <name>": func(string) []string { return []string{"apple", "avocado", "banana", ":bad", "new\nline"} },
	}}
	if err := c.Check(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		words     []string
		want      []string
		wantFiles bool
	}{
		{[]string{""}, []string{"get", "put", "apple", "avocado", "banana"}, false},
		{[]string{"a"}, []string{"apple", "avocado"}, false},
		{[]string{"get", ""}, []string{"apple", "avocado", "banana"}, false},
		{[]string{"get", "apple", ""}, nil, false},
		{[]string{"-d", "get", "b"}, []string{"banana"}, false},
		{[]string{"get", "--color", ""}, []string{"red", "green"}, false},
		{[]string{"get", "--color=g"}, []string{"--color=green"}, false},
		{[]string{"put", "x", "--from", ""}, nil, true},
		{[]string{"--dir", "/"}, nil, true},
		{[]string{"put", "--"}, []string{"--help", "--debug", "--dir", "--from"}, false},
		{[]string{"h"}, nil, false}, // hidden
		{[]string{"--nosuch", "x", ""}, nil, false},
	}
	for _, tt := range tests {
		got, files := c.Complete(tt.words)
		if !slices.Equal(got, tt.want) || files != tt.wantFiles {
			t.Errorf("Complete(%q) = %q, %v; want %q, %v", tt.words, got, files, tt.want, tt.wantFiles)
		}
	}
}

func TestCheck(t *testing.T) {
	c := &Completer{Parser: toyParser(t), Predictors: map[string]Predictor{"get <thing>": nil}}
	if err := c.Check(); err == nil || !strings.Contains(err.Error(), `"get <thing>"`) {
		t.Errorf("Check with a predictor for no argument: %v", err)
	}
	var b strings.Builder
	if err := c.Run(&b, []string{"--", ""}); err == nil {
		t.Errorf("Run with a bad predictor succeeded: %q", b.String())
	}
}

func TestScript(t *testing.T) {
	for _, sh := range Shells {
		s, err := Script(sh, "my-prog")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(s, "my-prog __complete --") || strings.Contains(s, "FUNC") || strings.Contains(s, "PROGRAM") {
			t.Errorf("%s script:\n%s", sh, s)
		}
	}
	if _, err := Script("tcsh", "x"); err == nil {
		t.Error("Script(tcsh) succeeded")
	}
}

func TestManEscapes(t *testing.T) {
	var b strings.Builder
	if err := Man(&b, toyParser(t), Page{Section: "1", Source: "toy 1.0", SeeAlso: []string{"git(1)"}}); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{
		".TH TOY 1",
		`\fB\-\-debug\fR`,
		`\&.A line that starts with a dot.`, // not a roff request
		"Put a thing \\-\\- carefully.",
		".nf\n  put x \\-\\-from y\n.fi",
		".BR git (1)",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("man page lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "Hidden.") {
		t.Errorf("man page shows a hidden command:\n%s", page)
	}
}
