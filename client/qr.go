package client

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	_ "image/gif"  // QR screenshots come as GIF too
	_ "image/jpeg" // photos of a QR code
	_ "image/png"  // screenshots, and pquerna/otp's key.Image
	"io"
	"os"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"
)

// maxImage bounds the image files ReadQR accepts.
const maxImage = 32 << 20

// ReadQR decodes the QR code in the image file at path (PNG, JPEG or GIF)
// and returns its text. It is pure Go (gozxing). A light-on-dark code, as a
// terminal shows one, is decoded too.
func ReadQR(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	text, err := DecodeQR(io.LimitReader(f, maxImage))
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return text, nil
}

// DecodeQR decodes the QR code in the image read from r.
func DecodeQR(r io.Reader) (string, error) {
	img, format, err := image.Decode(r)
	if err != nil {
		return "", fmt.Errorf("not a PNG, JPEG or GIF image: %w", err)
	}
	return decodeImage(img, format)
}

func decodeImage(img image.Image, format string) (string, error) {
	// A code needs a quiet zone around it to be found, and pquerna/otp's
	// images (and tight crops) have none: try the image as it is, then with
	// a margin; each light-on-dark too (a terminal's code), with a dark
	// margin.
	b := img.Bounds()
	margin := max(b.Dx(), b.Dy())/8 + 8
	tries := []gozxing.LuminanceSource{
		gozxing.NewLuminanceSourceFromImage(img),
		gozxing.NewLuminanceSourceFromImage(pad(img, margin, color.White)),
		gozxing.NewLuminanceSourceFromImage(img).Invert(),
		gozxing.NewLuminanceSourceFromImage(pad(img, margin, color.Black)).Invert(),
	}
	// The finder-pattern search sometimes misjudges a code whose modules
	// are unevenly scaled (400 pixels for 41 modules); reading it as a
	// pure, upright code, which is what a screenshot holds, then works.
	hard := map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_TRY_HARDER: true}
	pure := map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_PURE_BARCODE: true}
	var first error
	for _, hints := range []map[gozxing.DecodeHintType]any{hard, pure} {
		for _, src := range tries {
			bmp, err := gozxing.NewBinaryBitmap(gozxing.NewHybridBinarizer(src))
			if err != nil {
				return "", err
			}
			res, err := qrcode.NewQRCodeReader().Decode(bmp, hints)
			if err == nil {
				return res.GetText(), nil
			}
			if first == nil {
				first = err
			}
		}
	}
	var nf gozxing.NotFoundException
	if errors.As(first, &nf) {
		return "", fmt.Errorf("no QR code found in the %s image (%dx%d): crop it to the code, or use --uri", format, b.Dx(), b.Dy())
	}
	return "", fmt.Errorf("the QR code in the %s image cannot be read: %w", format, first)
}

// pad returns img with a margin of n pixels of colour c on every side.
func pad(img image.Image, n int, c color.Color) image.Image {
	b := img.Bounds()
	out := image.NewGray(image.Rect(0, 0, b.Dx()+2*n, b.Dy()+2*n))
	draw.Draw(out, out.Bounds(), image.NewUniform(c), image.Point{}, draw.Src)
	draw.Draw(out, b.Sub(b.Min).Add(image.Pt(n, n)), img, b.Min, draw.Src)
	return out
}
