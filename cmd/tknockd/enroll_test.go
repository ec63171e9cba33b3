package main

import (
	"encoding/base32"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/internal/config"
	"github.com/tknock/tknock/internal/config/configtest"
	"github.com/tknock/tknock/internal/enrollfile"
	"github.com/tknock/tknock/internal/enrollqr"
	"github.com/tknock/tknock/totpseq"
)

func b32(b []byte) string { return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b) }

// TestEnrollRoundTrip enrolls a user through the command line, then reads
// the enrollment back the ways a client does: the file with the client's
// parser, the terminal QR code rendered back to pixels, and the PNG.
func TestEnrollRoundTrip(t *testing.T) {
	c := configtest.New(t, "[enroll]\nhost = \"knock.example.org\"\nrange = \"40000-40999\"\nexclude = [40022]\nproto = \"udp\"\nlength = 8")
	pngPath := filepath.Join(t.TempDir(), "alice.png")
	code, out, errOut := runCLI(t, "enroll", "alice", "--service", "ssh,web", "--png", pngPath, "-c", c.Path)
	if code != 0 {
		t.Fatalf("enroll: exit %d: %s", code, errOut)
	}

	// The file: mode 0600, parsed by the client's parser, with the
	// configured parameters, and accepted by the daemon's loader.
	path := config.UserFile(c.UsersDir, "alice")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: mode %v, want 0600", path, fi.Mode())
	}
	e, err := enrollfile.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if e.Name != "alice" || e.Host != "knock.example.org" || e.Realm != "gw.example.org" ||
		strings.Join(e.Services, ",") != "ssh,web" || e.Range != (totpseq.Range{Lo: 40000, Hi: 40999}) ||
		e.Proto != inet.UDP || e.Length != 8 || len(e.Exclude) != 1 || len(e.Secret) != totpseq.DefaultSecretSize {
		t.Errorf("enrollment file read as %+v", e)
	}
	users, err := config.LoadUsers(c)
	if err != nil || len(users) != 1 {
		t.Fatalf("loadUsers after enroll: %d users, %v", len(users), err)
	}
	uri := e.URI()

	// The URI is printed as is.
	if !strings.Contains(out, "\n"+uri+"\n") {
		t.Errorf("enroll output lacks the URI line %q:\n%s", uri, out)
	}
	// The hand-over hint names the client's real import command.
	if !strings.Contains(out, "tknock enroll --qr") {
		t.Errorf("enroll output does not tell how the client imports the enrollment (tknock enroll --qr):\n%s", out)
	}

	// The terminal QR code decodes to the exact URI.
	img := terminalQRImage(t, out)
	if got := decodeQR(t, img); got != uri {
		t.Errorf("terminal QR code decodes to\n%q\nwant\n%q", got, uri)
	}

	// The PNG: mode 0600, and decodes to the exact URI, with gozxing and
	// with zbarimg.
	fi, err = os.Stat(pngPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: mode %v, want 0600", pngPath, fi.Mode())
	}
	checkPNG(t, pngPath, uri)

	// A second enrollment of alice needs --force, and makes a new secret.
	code, _, errOut = runCLI(t, "enroll", "alice", "-c", c.Path)
	if code != 1 || !strings.Contains(errOut, "enrolled already") {
		t.Errorf("enroll again: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = runCLI(t, "enroll", "alice", "--force", "--no-qr", "-c", c.Path)
	if code != 0 {
		t.Fatalf("enroll --force: exit %d: %s", code, errOut)
	}
	e2, err := enrollfile.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(e2.Secret) == string(e.Secret) {
		t.Errorf("enroll --force kept the old secret")
	}
	if strings.Join(e2.Services, ",") != "ssh" {
		t.Errorf("enroll without --service: services %v, want the [enroll] default ssh", e2.Services)
	}
	// No temporary files are left behind.
	entries, _ := os.ReadDir(c.UsersDir)
	if len(entries) != 1 {
		t.Errorf("users dir holds %d entries after enrolling, want 1", len(entries))
	}
}

func TestEnrollErrors(t *testing.T) {
	c := configtest.New(t, "")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"enroll", "../x"}, `user name "../x"`},
		{[]string{"enroll", ".hidden"}, `user name ".hidden"`},
		{[]string{"enroll", "alice", "--service", "db"}, `service "db" is not in [services]`},
		{[]string{"enroll", "alice", "--host", "a b"}, "parameter host"},
		{[]string{"enroll"}, "expected \"<name>\""},
	}
	for _, tt := range tests {
		code, _, errOut := runCLI(t, append(tt.args, "-c", c.Path)...)
		if code == 0 || !strings.Contains(errOut, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want an error containing %q", tt.args, code, errOut, tt.want)
		}
	}
	os.Remove(c.UsersDir)
	code, _, errOut := runCLI(t, "enroll", "alice", "-c", c.Path)
	if code != 1 || !strings.Contains(errOut, "users directory") {
		t.Errorf("enroll without a users dir: exit %d, stderr %q", code, errOut)
	}
}

// TestEnrollAllOrNothing: an enrollment whose PNG cannot be written leaves
// no user file behind, so the same command works once the path is fixed.
func TestEnrollAllOrNothing(t *testing.T) {
	c := configtest.New(t, "")
	bad := filepath.Join(t.TempDir(), "missing", "erin.png")
	code, _, errOut := runCLI(t, "enroll", "erin", "--png", bad, "--no-qr", "-c", c.Path)
	if code != 1 || !strings.Contains(errOut, "nothing was written") {
		t.Errorf("enroll --png %s: exit %d, stderr %q; want exit 1 and %q", bad, code, errOut, "nothing was written")
	}
	if entries, _ := os.ReadDir(c.UsersDir); len(entries) != 0 {
		t.Errorf("users dir holds %v after a failed enroll, want nothing", entries)
	}
	good := filepath.Join(t.TempDir(), "erin.png")
	if code, _, errOut := runCLI(t, "enroll", "erin", "--png", good, "--no-qr", "-c", c.Path); code != 0 {
		t.Errorf("enroll again with a good --png: exit %d, stderr %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(c.UsersDir, "erin.uri")); err != nil {
		t.Error(err)
	}
}

// terminalQRImage renders the half-block QR code in the enroll output back
// to pixels, as a terminal with the dark theme shows it (theme.render): each
// character cell is one module wide and two high. Every coloured line of
// the code must reset the colours at its end.
func terminalQRImage(t *testing.T, out string) image.Image {
	t.Helper()
	for line := range strings.Lines(out) {
		line = strings.TrimSuffix(line, "\n")
		if strings.HasPrefix(line, enrollqr.LineStart) && !strings.HasSuffix(line, enrollqr.LineEnd) {
			t.Fatalf("QR line does not reset the colours: %q", line)
		}
	}
	img, err := darkTheme.render(out)
	if err != nil {
		t.Fatalf("terminal QR code: %v\n%s", err, out)
	}
	return img
}

// checkPNG reads the PNG at path, checks that gozxing and zbarimg both
// decode it to uri, and returns the image.
func checkPNG(t *testing.T, path, uri string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if got := decodeQR(t, img); got != uri {
		t.Errorf("PNG decodes (gozxing) to %q, want %q", got, uri)
	}
	zbarimgCheck(t, path, uri)
	return img
}

func decodeQR(t *testing.T, img image.Image) string {
	t.Helper()
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	// No "pure barcode" hint: the code is found as in a camera image.
	res, err := qrcode.NewQRCodeReader().Decode(bmp, nil)
	if err != nil {
		t.Fatalf("QR code does not decode: %v", err)
	}
	return res.GetText()
}
