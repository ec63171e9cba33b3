// Package enrollqr draws an enrollment URI as a QR code: half blocks for a
// terminal (readable on dark and light themes) and a PNG with a quiet zone
// and a caption. tknockd enroll shows both.
package enrollqr

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/draw"
	"image/png"
	"io"
	"os"
	"path/filepath"

	"github.com/mdp/qrterminal/v3"
	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
	"rsc.io/qr"

	"github.com/tknock/tknock/totpseq"
)

// Terminal QR codes.
//
// qrterminal's half blocks draw the LIGHT modules with the glyphs ("█" both
// halves light, "▀" top light, "▄" bottom light, " " both dark), which
// assumes light text on a dark background: on a light-background terminal
// the code would come out inverted, and many phone scanners reject an
// inverted code. So every line is wrapped in explicit colours, white
// glyphs on a black background, and the code reads the same (dark modules
// on a light quiet zone) whatever the terminal's theme. The colours are
// entries 231 (white) and 16 (black) of the 256-colour cube, which themes
// do not remap, where the 16 palette colours (SGR 97 and 40, say) are the
// theme's to choose: light themes often make "bright white" dark and
// "black" light, which inverts the code (TestTerminalQRThemes renders both
// kinds of theme). The quiet zone is made of light glyphs too, so it does
// not depend on the background either.
//
// LineStart and LineEnd wrap each line of the code on a terminal.
const (
	LineStart = "\x1b[38;5;231;48;5;16m" // cube white foreground, cube black background
	LineEnd   = "\x1b[0m"                // back to the terminal's colours
)

const (
	qrQuietZone = 2    // modules; scanners cope with less than the standard 4
	qrLevel     = qr.L // the URI is long; L keeps the code small enough for a terminal
)

// WriteTerminal prints text as a QR code of half blocks to w. The
// colours are set only when terminal says w is one: in a file or a pipe
// they would be stray escape codes. There the glyphs stay the light modules,
// as qrterminal draws them, which reads right wherever the text is shown
// light on dark; the PNG (--png) is the form that reads everywhere.
func WriteTerminal(w io.Writer, text string, terminal bool) error {
	// qrterminal ignores an encoding error (text too long for a QR code)
	// and then dereferences nil: check first.
	if _, err := qr.Encode(text, qrLevel); err != nil {
		return fmt.Errorf("qr code: %w", err)
	}
	var buf bytes.Buffer
	qrterminal.GenerateWithConfig(text, qrterminal.Config{
		Level:          qrLevel,
		Writer:         &buf,
		HalfBlocks:     true,
		WhiteChar:      qrterminal.WHITE_WHITE,
		BlackChar:      qrterminal.BLACK_BLACK,
		WhiteBlackChar: qrterminal.WHITE_BLACK,
		BlackWhiteChar: qrterminal.BLACK_WHITE,
		QuietZone:      qrQuietZone,
	})
	if !terminal {
		_, err := w.Write(buf.Bytes())
		return err
	}
	var out bytes.Buffer
	for line := range bytes.Lines(buf.Bytes()) {
		out.WriteString(LineStart)
		out.Write(bytes.TrimSuffix(line, []byte("\n")))
		out.WriteString(LineEnd + "\n")
	}
	_, err := w.Write(out.Bytes())
	return err
}

// The PNG: the code with a quiet zone of qrPNGQuiet modules of white on
// every side (what the QR standard asks for, and what phone scanners need
// to find the code), and under it a caption naming the user and the host,
// for the person who receives several.
const (
	qrPNGModule  = 8 // pixels per module: a 200-character URI gives about 60 modules
	qrPNGQuiet   = 4 // modules of white around the code
	qrPNGCaption = 2 // the caption font's scale (7x13 pixels a glyph at 1)
	qrPNGLevel   = qr.M
)

// WritePNG writes uri's QR code as a PNG file at path, mode 0600 (it holds
// the secret). An existing file is replaced.
func WritePNG(path, uri string) error {
	img, err := qrPNG(uri)
	if err != nil {
		return fmt.Errorf("qr png: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return fmt.Errorf("qr png: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("qr png: %w", err)
	}
	defer os.Remove(f.Name()) // fails harmlessly after the rename
	// CreateTemp makes the file 0600 already; say it for the reader.
	err = errors.Join(f.Chmod(0o600), writeAll(f, buf.Bytes()), f.Close())
	if err != nil {
		return fmt.Errorf("qr png: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("qr png: %w", err)
	}
	return nil
}

// qrPNG draws uri's QR code, its quiet zone and the caption "USER @ HOST"
// (from the URI) in black on white.
func qrPNG(uri string) (*image.Gray, error) {
	en, err := totpseq.ParseURI(uri)
	if err != nil {
		return nil, err
	}
	code, err := qr.Encode(uri, qrPNGLevel)
	if err != nil {
		return nil, err
	}
	side := (code.Size + 2*qrPNGQuiet) * qrPNGModule
	caption := en.Name + " @ " + en.Host
	face := basicfont.Face7x13
	textW := len(caption) * face.Advance * qrPNGCaption
	textH := face.Height * qrPNGCaption
	width := max(side, textW+2*qrPNGQuiet*qrPNGModule)
	img := image.NewGray(image.Rect(0, 0, width, side+textH+qrPNGQuiet*qrPNGModule))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)

	left := (width - side) / 2
	for y := range code.Size {
		for x := range code.Size {
			if code.Black(x, y) {
				px := left + (x+qrPNGQuiet)*qrPNGModule
				py := (y + qrPNGQuiet) * qrPNGModule
				draw.Draw(img, image.Rect(px, py, px+qrPNGModule, py+qrPNGModule), image.Black, image.Point{}, draw.Src)
			}
		}
	}

	// The caption: drawn at the font's size, then scaled up by whole
	// pixels, centred under the code (in the bottom quiet zone's place
	// the code keeps its four modules: the caption starts below them).
	small := image.NewGray(image.Rect(0, 0, len(caption)*face.Advance, face.Height))
	draw.Draw(small, small.Bounds(), image.White, image.Point{}, draw.Src)
	d := font.Drawer{Dst: small, Src: image.Black, Face: face, Dot: fixed.P(0, face.Ascent)}
	d.DrawString(caption)
	x0, y0 := (width-textW)/2, side
	for y := range textH {
		for x := range textW {
			img.SetGray(x0+x, y0+y, small.GrayAt(x/qrPNGCaption, y/qrPNGCaption))
		}
	}
	return img, nil
}

func writeAll(f *os.File, b []byte) error {
	if _, err := f.Write(b); err != nil {
		return err
	}
	return f.Sync()
}
