package main

import (
	"bytes"
	"context"
	"image"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tknock/tknock/internal/enrollqr"
	"github.com/tknock/tknock/totpseq"
)

// qrTestConfig writes a configuration and its users directory and returns
// the configuration's path.
func qrTestConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "tknockd.toml")
	doc := "realm = \"gw.example.org\"\n[enroll]\nhost = \"knock.example.org\"\n[services]\nssh = [\"tcp/22\"]\n"
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "users"), 0o700); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestTerminalQRNotATerminal: enroll writing to a file (not a terminal)
// puts no escape code in it, and the code in it still reads; on a
// terminal, the colours are set as before.
func TestTerminalQRNotATerminal(t *testing.T) {
	cfg := qrTestConfig(t)
	outPath := filepath.Join(t.TempDir(), "enroll.txt")
	f, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	var errOut bytes.Buffer
	code := run(context.Background(), []string{"enroll", "alice", "-c", cfg}, f, &errOut)
	f.Close()
	if code != 0 {
		t.Fatalf("enroll: exit %d: %s", code, errOut.String())
	}
	out, err := os.ReadFile(outPath)
	if err != nil {
		t.Fatal(err)
	}
	if i := bytes.IndexByte(out, 0x1b); i >= 0 {
		t.Errorf("enroll's output in a file has an escape code at byte %d: %q", i, out[max(0, i-10):min(len(out), i+10)])
	}
	uri := lastURI(t, string(out))
	if got := decodeQR(t, terminalQRImage(t, string(out))); got != uri {
		t.Errorf("QR code in the file decodes to %q, want %q", got, uri)
	}

	// On a terminal: every line of the code sets and resets its colours.
	var term bytes.Buffer
	if err := enrollqr.WriteTerminal(&term, uri, true); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(term.String(), "\n"), "\n")
	for _, l := range lines {
		if !strings.HasPrefix(l, enrollqr.LineStart) || !strings.HasSuffix(l, enrollqr.LineEnd) {
			t.Fatalf("terminal QR line without its colours: %q", l)
		}
	}
	if got := decodeQR(t, terminalQRImage(t, term.String())); got != uri {
		t.Errorf("terminal QR code decodes to %q, want %q", got, uri)
	}
}

func lastURI(t *testing.T, out string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "otpauth://") {
			return l
		}
	}
	t.Fatalf("no URI in the output:\n%s", out)
	return ""
}

// TestQRPNG: the PNG has at least four modules of white around the code,
// the caption under it, and reads (gozxing, zbarimg).
func TestQRPNG(t *testing.T) {
	p := totpseq.Defaults()
	p.Secret = []byte("0123456789abcdef0123456789abcdef")
	p.Realm = "gw.example.org"
	en := &totpseq.Enrollment{Name: "alice", Host: "knock.example.org", Params: p}
	if err := en.Validate(); err != nil {
		t.Fatal(err)
	}
	uri := en.URI()
	path := filepath.Join(t.TempDir(), "alice.png")
	if err := enrollqr.WritePNG(path, uri); err != nil {
		t.Fatal(err)
	}
	img := checkPNG(t, path, uri)

	// The code: the dark pixels of the top part, whose first row is the
	// top of the finder patterns. Its module size is the finder
	// pattern's outer ring: 7 modules wide.
	b := img.Bounds()
	dark := func(x, y int) bool { r, _, _, _ := img.At(x, y).RGBA(); return r < 0x8000 }
	code := image.Rectangle{Min: image.Pt(b.Max.X, b.Max.Y)}
	rowDark := func(y int) bool {
		for x := b.Min.X; x < b.Max.X; x++ {
			if dark(x, y) {
				return true
			}
		}
		return false
	}
	y := b.Min.Y
	for ; y < b.Max.Y && !rowDark(y); y++ {
	}
	code.Min.Y = y
	for ; y < b.Max.Y && rowDark(y); y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if dark(x, y) {
				code.Min.X, code.Max.X = min(code.Min.X, x), max(code.Max.X, x+1)
			}
		}
	}
	code.Max.Y = y
	finder := 0
	for x := code.Min.X; dark(x, code.Min.Y); x++ {
		finder++
	}
	module := finder / 7
	if module == 0 || finder%7 != 0 {
		t.Fatalf("finder pattern %d pixels wide: not 7 modules", finder)
	}
	quiet := 4 * module
	if code.Min.X-b.Min.X < quiet || b.Max.X-code.Max.X < quiet || code.Min.Y-b.Min.Y < quiet {
		t.Errorf("code at %v in a %v image: want at least %d pixels (4 modules) of white around it", code, b, quiet)
	}
	// The caption: dark pixels below the code, at least four modules of
	// white away from it, inside the image's margins.
	gap := 0
	for ; y < b.Max.Y && !rowDark(y); y++ {
		gap++
	}
	if y == b.Max.Y {
		t.Fatal("no caption under the code")
	}
	if gap < quiet {
		t.Errorf("caption %d pixels under the code, want at least %d (the quiet zone)", gap, quiet)
	}
	captionRows := 0
	for ; y < b.Max.Y && rowDark(y); y++ {
		captionRows++
	}
	if captionRows < 10 {
		t.Errorf("caption %d pixels high, want a line of text", captionRows)
	}
}
