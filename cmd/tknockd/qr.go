package main

import (
	"bytes"
	"errors"
	"fmt"
	"image/png"
	"io"
	"os"
	"path/filepath"

	"github.com/mdp/qrterminal/v3"
	"github.com/pquerna/otp"
	"rsc.io/qr"
)

// Terminal QR codes.
//
// qrterminal's half blocks draw the LIGHT modules with the glyphs ("█" both
// halves light, "▀" top light, "▄" bottom light, " " both dark), which
// assumes light text on a dark background: on a light-background terminal
// the code would come out inverted, and many phone scanners reject an
// inverted code. So every line is wrapped in explicit colours, bright white
// glyphs on a black background, and the code reads the same (dark modules
// on a light quiet zone) whatever the terminal's theme. The quiet zone is
// made of light glyphs too, so it does not depend on the background either.
const (
	qrLineStart = "\x1b[97;40m" // bright white foreground, black background
	qrLineEnd   = "\x1b[0m"     // back to the terminal's colours
	qrQuietZone = 2             // modules; scanners cope with less than the standard 4
	qrLevel     = qr.L          // the URI is long; L keeps the code small enough for a terminal
)

// writeTerminalQR prints text as a QR code of half blocks to w.
func writeTerminalQR(w io.Writer, text string) error {
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
	var out bytes.Buffer
	for line := range bytes.Lines(buf.Bytes()) {
		out.WriteString(qrLineStart)
		out.Write(bytes.TrimSuffix(line, []byte("\n")))
		out.WriteString(qrLineEnd + "\n")
	}
	_, err := w.Write(out.Bytes())
	return err
}

// qrPNGSize is the side of the PNG in pixels: a 200-character URI gives a
// QR code of about 60 modules, so each module is several pixels.
const qrPNGSize = 512

// writePNG writes uri's QR code as a PNG file at path, mode 0600 (it holds
// the secret). An existing file is replaced.
func writePNG(path, uri string) error {
	key, err := otp.NewKeyFromURL(uri)
	if err != nil {
		return fmt.Errorf("qr png: %w", err)
	}
	img, err := key.Image(qrPNGSize, qrPNGSize)
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

func writeAll(f *os.File, b []byte) error {
	if _, err := f.Write(b); err != nil {
		return err
	}
	return f.Sync()
}
