package client

import (
	"bytes"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pquerna/otp"
	"github.com/tknock/tknock/totpseq"
)

// enrollmentQR returns a real enrollment URI and pquerna/otp's QR image of
// it, the image the daemon shows.
func enrollmentQR(t testing.TB) (string, image.Image) {
	t.Helper()
	p := totpseq.Defaults()
	p.Realm = "ssh.example.com"
	p.Services = []string{"ssh", "web"}
	p.Exclude = []uint16{27017}
	e, err := totpseq.NewEnrollment("alice", "ssh.example.com", p, nil)
	if err != nil {
		t.Fatal(err)
	}
	uri := e.URI()
	key, err := otp.NewKeyFromURL(uri)
	if err != nil {
		t.Fatal(err)
	}
	img, err := key.Image(400, 400)
	if err != nil {
		t.Fatal(err)
	}
	return uri, img
}

func writeImage(t testing.TB, name string, img image.Image) string {
	t.Helper()
	var buf bytes.Buffer
	var err error
	if strings.HasSuffix(name, ".jpg") {
		err = jpeg.Encode(&buf, img, &jpeg.Options{Quality: 70})
	} else {
		err = png.Encode(&buf, img)
	}
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// screenshot puts img on a larger canvas, off centre: a light grey one, or
// with invert a dark one with the code inverted (a terminal's light-on-dark
// code).
func screenshot(img image.Image, invert bool) image.Image {
	canvas := image.NewRGBA(image.Rect(0, 0, 1100, 800))
	bg := color.Gray{0xc0}
	if invert {
		bg = color.Gray{0x20}
	}
	draw.Draw(canvas, canvas.Bounds(), image.NewUniform(bg), image.Point{}, draw.Src)
	off := image.Pt(530, 170)
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			g := color.GrayModel.Convert(img.At(x, y)).(color.Gray)
			if invert {
				g.Y = 255 - g.Y
			}
			canvas.Set(off.X+x-b.Min.X, off.Y+y-b.Min.Y, g)
		}
	}
	return canvas
}

func TestReadQR(t *testing.T) {
	uri, img := enrollmentQR(t)
	for name, im := range map[string]image.Image{
		"otp.png":        img,
		"screenshot.png": screenshot(img, false),
		"terminal.png":   screenshot(img, true),
		"photo.jpg":      screenshot(img, false),
	} {
		got, err := ReadQR(writeImage(t, name, im))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got != uri {
			t.Errorf("%s decoded to %q, want %q", name, got, uri)
		}
		if _, err := totpseq.ParseURI(got); err != nil {
			t.Errorf("%s: decoded URI does not parse: %v", name, err)
		}
	}
}

func TestReadQRErrors(t *testing.T) {
	blank := image.NewGray(image.Rect(0, 0, 200, 200))
	draw.Draw(blank, blank.Bounds(), image.White, image.Point{}, draw.Src)
	text := filepath.Join(t.TempDir(), "uri.txt")
	os.WriteFile(text, []byte("otpauth://totp/x"), 0o600)
	for _, tc := range []struct{ path, want string }{
		{writeImage(t, "blank.png", blank), "no QR code found in the png image (200x200)"},
		{text, "not a PNG, JPEG or GIF image"},
		{filepath.Join(t.TempDir(), "missing.png"), "no such file"},
	} {
		if _, err := ReadQR(tc.path); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ReadQR(%s) = %v, want %q", filepath.Base(tc.path), err, tc.want)
		}
	}
}
