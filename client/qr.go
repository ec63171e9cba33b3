package client

import (
	"errors"
	"fmt"
	"image"
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
	src := gozxing.NewLuminanceSourceFromImage(img)
	hints := map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_TRY_HARDER: true}
	var first error
	for _, s := range []gozxing.LuminanceSource{src, src.Invert()} {
		bmp, err := gozxing.NewBinaryBitmap(gozxing.NewHybridBinarizer(s))
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
	var nf gozxing.NotFoundException
	if errors.As(first, &nf) {
		return "", fmt.Errorf("no QR code found in the %s image (%dx%d): crop it to the code, or use --uri", format, img.Bounds().Dx(), img.Bounds().Dy())
	}
	return "", fmt.Errorf("the QR code in the %s image cannot be read: %w", format, first)
}
