package main

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"
	"github.com/tknock/tknock/internal/enrollqr"
)

// theme is a terminal colour theme, as a test renderer sees it: the
// default foreground and background and the 16 palette colours, all of
// which themes choose. The 256-colour cube (16..231), the grey ramp and
// 24-bit colours are absolute: themes do not remap them.
type theme struct {
	name    string
	fg, bg  uint8 // grey levels
	palette [16]uint8
}

var (
	// darkTheme is the xterm default: light text on black.
	darkTheme = theme{name: "dark", fg: 0xe5, bg: 0x00, palette: [16]uint8{
		0x00, 0x50, 0x60, 0x90, 0x40, 0x50, 0x80, 0xe5, 0x7f, 0x80, 0xa0, 0xe0, 0x70, 0x90, 0xc0, 0xff}}
	// lightTheme is a light theme of the kind that remaps the palette so
	// that "white" text stays readable on its light background: black
	// (0) is a light grey, white (7) and bright white (15) are dark.
	lightTheme = theme{name: "light", fg: 0x33, bg: 0xfd, palette: [16]uint8{
		0xee, 0x90, 0x70, 0x80, 0x50, 0x70, 0x60, 0x44, 0xc0, 0x90, 0x70, 0x80, 0x50, 0x70, 0x60, 0x22}}
)

// cube returns the grey level of colour n of the xterm 256-colour table
// beyond the palette: the 6x6x6 cube and the grey ramp (luma of the cube).
func cube(n int) uint8 {
	if n >= 232 {
		return uint8(8 + 10*(n-232))
	}
	n -= 16
	level := func(v int) int {
		if v == 0 {
			return 0
		}
		return 55 + 40*v
	}
	r, g, b := level(n/36), level(n/6%6), level(n%6)
	return uint8((299*r + 587*g + 114*b) / 1000)
}

// render draws out (enroll's output, half blocks and SGR colour codes) as
// t shows it: each cell two pixels high (top and bottom half), scaled up,
// inside a margin of the terminal's background.
func (t theme) render(out string) (*image.Gray, error) {
	var rows [][]uint8
	fg, bg := t.fg, t.bg
	for line := range strings.Lines(out) {
		line = strings.TrimSuffix(line, "\n")
		if !strings.ContainsAny(line, "█▀▄") {
			continue
		}
		var top, bottom []uint8
		for len(line) > 0 {
			if strings.HasPrefix(line, "\x1b[") {
				end := strings.IndexByte(line, 'm')
				if end < 0 {
					return nil, fmt.Errorf("unterminated escape code in %q", line)
				}
				var err error
				if fg, bg, err = t.sgr(line[2:end], fg, bg); err != nil {
					return nil, err
				}
				line = line[end+1:]
				continue
			}
			r, size := []rune(line)[0], len(string([]rune(line)[0]))
			line = line[size:]
			switch r {
			case '█':
				top, bottom = append(top, fg), append(bottom, fg)
			case '▀':
				top, bottom = append(top, fg), append(bottom, bg)
			case '▄':
				top, bottom = append(top, bg), append(bottom, fg)
			case ' ':
				top, bottom = append(top, bg), append(bottom, bg)
			default:
				return nil, fmt.Errorf("unexpected character %q", r)
			}
		}
		rows = append(rows, top, bottom)
		fg, bg = t.fg, t.bg // a new line starts as the last one ended: enroll resets
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("no QR code in the output")
	}
	const scale, margin = 4, 6 // margin in cells of the terminal's background
	w := 0
	for _, r := range rows {
		w = max(w, len(r))
	}
	img := image.NewGray(image.Rect(0, 0, (w+2*margin)*scale, (len(rows)+4*margin)*scale))
	for i := range img.Pix {
		img.Pix[i] = t.bg
	}
	for y, r := range rows {
		for x, c := range r {
			for dy := range scale {
				for dx := range scale {
					img.SetGray((x+margin)*scale+dx, (y+2*margin)*scale+dy, color.Gray{Y: c})
				}
			}
		}
	}
	return img, nil
}

// sgr applies the SGR parameters params to the colours fg and bg.
func (t theme) sgr(params string, fg, bg uint8) (uint8, uint8, error) {
	var ps []int
	for _, f := range strings.Split(params, ";") {
		n, err := strconv.Atoi(cmp0(f))
		if err != nil {
			return 0, 0, fmt.Errorf("SGR %q: %v", params, err)
		}
		ps = append(ps, n)
	}
	for i := 0; i < len(ps); i++ {
		switch p := ps[i]; {
		case p == 0:
			fg, bg = t.fg, t.bg
		case p >= 30 && p <= 37:
			fg = t.palette[p-30]
		case p >= 90 && p <= 97:
			fg = t.palette[p-90+8]
		case p >= 40 && p <= 47:
			bg = t.palette[p-40]
		case p >= 100 && p <= 107:
			bg = t.palette[p-100+8]
		case p == 39:
			fg = t.fg
		case p == 49:
			bg = t.bg
		case (p == 38 || p == 48) && i+2 < len(ps) && ps[i+1] == 5:
			c := t.palette[min(ps[i+2], 15)]
			if ps[i+2] >= 16 {
				c = cube(ps[i+2])
			}
			if p == 38 {
				fg = c
			} else {
				bg = c
			}
			i += 2
		case (p == 38 || p == 48) && i+4 < len(ps) && ps[i+1] == 2:
			c := uint8((299*ps[i+2] + 587*ps[i+3] + 114*ps[i+4]) / 1000)
			if p == 38 {
				fg = c
			} else {
				bg = c
			}
			i += 4
		default:
			return 0, 0, fmt.Errorf("SGR %q: parameter %d not rendered", params, p)
		}
	}
	return fg, bg, nil
}

func cmp0(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

// readQR decodes img with gozxing as a camera image, or says why not.
func readQR(img image.Image) (string, error) {
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		return "", err
	}
	res, err := qrcode.NewQRCodeReader().Decode(bmp, nil)
	if err != nil {
		return "", err
	}
	return res.GetText(), nil
}

// oldTerminalQR is the terminal QR code as enroll printed it before: the
// palette's bright white on its black (SGR 97;40), which light themes
// remap.
func oldTerminalQR(t *testing.T, uri string) string {
	t.Helper()
	var plain strings.Builder
	if err := enrollqr.WriteTerminal(&plain, uri, false); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for line := range strings.Lines(plain.String()) {
		b.WriteString("\x1b[97;40m" + strings.TrimSuffix(line, "\n") + "\x1b[0m\n")
	}
	return b.String()
}

// TestTerminalQRThemes renders enroll's terminal QR code as a dark and a
// light theme show it and decodes both (gozxing, and zbarimg on a PNG of
// the rendering). The code as it was printed before (97;40) decodes on
// the dark theme only: the light theme inverts it.
func TestTerminalQRThemes(t *testing.T) {
	cfg := qrTestConfig(t)
	orig := qrTerminal
	qrTerminal = func(io.Writer) bool { return true }
	t.Cleanup(func() { qrTerminal = orig })
	code, out, errOut := runCLI(t, "enroll", "alice", "-c", cfg)
	if code != 0 {
		t.Fatalf("enroll: exit %d: %s", code, errOut)
	}
	uri := lastURI(t, out)
	for _, th := range []theme{darkTheme, lightTheme} {
		t.Run(th.name, func(t *testing.T) {
			img, err := th.render(out)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := readQR(img); err != nil || got != uri {
				t.Errorf("the terminal QR code on the %s theme reads %q, %v; want the URI", th.name, got, err)
			}
			path := filepath.Join(t.TempDir(), th.name+".png")
			writeGrayPNG(t, path, img)
			zbarimgCheck(t, path, uri)

			old, err := th.render(oldTerminalQR(t, uri))
			if err != nil {
				t.Fatal(err)
			}
			got, err := readQR(old)
			if ok := err == nil && got == uri; ok != (th.name == "dark") {
				t.Errorf("the old code (97;40) on the %s theme reads %v (%v); want it to read on the dark theme only", th.name, ok, err)
			}
		})
	}
}

func writeGrayPNG(t *testing.T, path string, img image.Image) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
