package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/tknock/tknock/internal/config"
)

// listenMetrics opens the metrics endpoint's listener: a TCP address
// through listen (which config limits to loopback unless allowed), or a
// Unix socket made with its final mode and group before it accepts
// connections.
func listenMetrics(m config.MetricsConfig, listen func(network, addr string) (net.Listener, error)) (net.Listener, error) {
	if m.Network != "unix" {
		return listen(m.Network, m.Addr)
	}
	return listenUnix(m.Addr, m.SocketGID)
}

// listenUnix makes a Unix socket at path, mode 0600, or 0660 to group gid
// (-1: none), that listens only once its mode and group are set: nobody
// can connect in between. A socket left at path (a daemon killed before
// it could remove it) is replaced; any other file is an error. Closing
// the listener removes the socket.
func listenUnix(path string, gid int) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("metrics socket %s: exists and is not a socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("metrics socket: %w", err)
		}
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("metrics socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close() // net.FileListener keeps a duplicate
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		return nil, fmt.Errorf("metrics socket: bind %s: %w", path, err)
	}
	ok := false
	defer func() {
		if !ok {
			os.Remove(path)
		}
	}()
	mode := os.FileMode(0o600)
	if gid >= 0 {
		mode = 0o660
		if err := os.Lchown(path, -1, gid); err != nil {
			return nil, fmt.Errorf("metrics socket: %w", err)
		}
	}
	if err := os.Chmod(path, mode); err != nil {
		return nil, fmt.Errorf("metrics socket: %w", err)
	}
	if err := unix.Listen(fd, 64); err != nil {
		return nil, fmt.Errorf("metrics socket: listen %s: %w", path, err)
	}
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("metrics socket: %w", err)
	}
	ok = true
	return &unixListener{Listener: ln, path: path}, nil
}

// unixListener removes its socket file when closed.
type unixListener struct {
	net.Listener
	path string
}

func (l *unixListener) Close() error {
	err := l.Listener.Close()
	if rerr := os.Remove(l.path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) && err == nil {
		err = rerr
	}
	return err
}

// serveHTTP serves h on ln until ctx is done, then shuts the server down,
// giving requests in flight a second.
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler, log zerolog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		MaxHeaderBytes:    8 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info().Str("addr", ln.Addr().String()).Msg("metrics listening")
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
