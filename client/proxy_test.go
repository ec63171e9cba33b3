package client

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// echoServer accepts one connection on loopback and echoes it until the
// client half-closes, then closes.
func echoServer(t *testing.T) *net.TCPListener {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return ln
}

func TestPipeEcho(t *testing.T) {
	ln := echoServer(t)
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	in := strings.Repeat("SSH-2.0-test\r\n", 10000) // larger than socket buffers
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := Pipe(ctx, c, strings.NewReader(in), &out); err != nil {
		t.Fatalf("Pipe: %v", err)
	}
	if out.String() != in {
		t.Errorf("Pipe echoed %d bytes, want the %d sent", out.Len(), len(in))
	}
}

// TestPipeServerCloses ends the pipe when the server closes, while stdin
// is still open.
func TestPipeServerCloses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Write([]byte("bye\n"))
			c.Close()
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	stdin, w := io.Pipe() // never written: stdin stays open
	defer w.Close()
	var out bytes.Buffer
	if err := Pipe(t.Context(), c, stdin, &out); err != nil {
		t.Fatalf("Pipe: %v", err)
	}
	if out.String() != "bye\n" {
		t.Errorf("out = %q, want bye", out.String())
	}
}

func TestPipeCancelled(t *testing.T) {
	ln := echoServer(t)
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	stdin, w := io.Pipe()
	defer w.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := Pipe(ctx, c, stdin, io.Discard); err != context.Canceled {
		t.Errorf("Pipe with a cancelled context = %v, want context.Canceled", err)
	}
}
