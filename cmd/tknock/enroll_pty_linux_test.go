package main

import (
	"bytes"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tknock/tknock/inet"
	"golang.org/x/sys/unix"
)

// openPTY returns a new pseudo-terminal's controller and terminal ends.
func openPTY(t *testing.T) (ptmx, tty *os.File) {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("skipping: no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { ptmx.Close() })
	fd := int(ptmx.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	tty, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open pty: %v", err)
	}
	t.Cleanup(func() { tty.Close() })
	return ptmx, tty
}

// TestEnrollURITerminal: `tknock enroll --uri -` on a terminal asks for the
// URI, reads it without echo, and finishes at the end of the line (Enter),
// not at end of file.
func TestEnrollURITerminal(t *testing.T) {
	ptmx, tty := openPTY(t)
	e := newEnv(t)
	uri := enrollment(t, "ssh.example.com", inet.TCP).URI()

	var stdout, stderr bytes.Buffer
	a := &app{stdin: tty, stdout: &stdout, stderr: &stderr, dialer: e.net, resolver: e.net, route: route}
	done := make(chan int, 1)
	go func() { done <- a.run(t.Context(), []string{"enroll", "--uri", "-"}) }()

	// Type the line once the terminal's echo is off (ReadPassword is
	// waiting), as a person pasting it and pressing Enter.
	for deadline := time.Now().Add(10 * time.Second); ; {
		tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatal(err)
		}
		if tio.Lflag&unix.ECHO == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("enroll --uri - on a terminal never turned echo off to read the URI")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := io.WriteString(ptmx, uri+"\r"); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("enroll --uri - on a terminal: exit %d, stderr %q", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("enroll --uri - on a terminal did not finish at the end of the line")
	}
	if !strings.Contains(stderr.String(), "Paste the enrollment URI") {
		t.Errorf("stderr %q: want the prompt", stderr.String())
	}
	if !strings.Contains(stdout.String(), "profile ssh.example.com") {
		t.Errorf("stdout %q: want the new profile", stdout.String())
	}
	// What the terminal shows: the pty echoed nothing of the line. A
	// marker written to the terminal ends what there is to read.
	if _, err := io.WriteString(tty, "END-OF-TEST\n"); err != nil {
		t.Fatal(err)
	}
	var echo []byte
	for buf := make([]byte, 4096); !bytes.Contains(echo, []byte("END-OF-TEST")); {
		n, err := ptmx.Read(buf)
		if err != nil {
			t.Fatalf("read the terminal: %v", err)
		}
		echo = append(echo, buf[:n]...)
	}
	if bytes.Contains(echo, []byte("secret=")) {
		t.Errorf("the terminal echoed the URI: %q", echo)
	}
}
