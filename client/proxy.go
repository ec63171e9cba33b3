package client

import (
	"context"
	"errors"
	"io"
	"net"
)

// Pipe copies in to conn and conn to out, for ssh's ProxyCommand: in and out
// are the command's standard input and output. When in ends, the writing
// half of conn is closed (if conn can do that) and copying from conn goes
// on; Pipe returns when conn's side ends (nil on a clean end), when a copy
// fails, or when ctx is done, and closes conn. A read from in that is
// blocked then stays blocked: Pipe is meant to end the process.
func Pipe(ctx context.Context, conn net.Conn, in io.Reader, out io.Writer) error {
	defer conn.Close()
	up := make(chan error, 1)
	down := make(chan error, 1)
	go func() {
		_, err := io.Copy(conn, in)
		if err == nil {
			if cw, ok := conn.(interface{ CloseWrite() error }); ok {
				err = cw.CloseWrite()
			}
		}
		up <- err
	}()
	go func() {
		_, err := io.Copy(out, conn)
		down <- err
	}()
	for {
		select {
		case err := <-up:
			if err != nil {
				return err
			}
			up = nil // in ended cleanly; wait for the other side
		case err := <-down:
			if errors.Is(err, net.ErrClosed) {
				err = nil
			}
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
