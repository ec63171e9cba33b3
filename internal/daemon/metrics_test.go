package daemon

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/rs/zerolog"

	"github.com/tknock/tknock/internal/config"
)

func TestServeHTTP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "x_total 7\n") })
	go func() { errc <- serveHTTP(ctx, ln, h, zerolog.Nop()) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "x_total 7\n" {
		t.Errorf("GET /metrics: %s %q", resp.Status, body)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Errorf("serveHTTP after cancel: %v", err)
	}
	if _, err := http.Get("http://" + ln.Addr().String() + "/metrics"); err == nil {
		t.Errorf("still served after the context ended")
	}
}

// unixGet fetches /metrics through the Unix socket at path.
func unixGet(path string) (string, error) {
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}}
	resp, err := c.Get("http://tknockd/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestListenUnix: the socket has mode 0600 (or 0660 and the group when one
// is set), replaces a stale socket, refuses to replace another file, and
// is removed when the listener closes.
func TestListenUnix(t *testing.T) {
	g, err := user.LookupGroupId(strconv.Itoa(os.Getgid()))
	if err != nil {
		t.Skipf("no name for the process's group: %v", err)
	}
	gid := os.Getgid()
	for _, c := range []struct {
		name     string
		gid      int
		wantMode os.FileMode
	}{{"owner only", -1, 0o600}, {"group " + g.Name, gid, 0o660}} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "metrics.sock")
			// A socket a killed daemon left behind.
			stale, err := net.Listen("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			stale.(*net.UnixListener).SetUnlinkOnClose(false)
			stale.Close()
			ln, err := listenMetrics(config.MetricsConfig{Network: "unix", Addr: path, SocketGID: c.gid}, nil)
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != c.wantMode {
				t.Errorf("socket mode %v, want %v", got, c.wantMode)
			}
			if c.gid >= 0 {
				if got := int(fi.Sys().(*syscall.Stat_t).Gid); got != c.gid {
					t.Errorf("socket group %d, want %d", got, c.gid)
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error, 1)
			go func() {
				errc <- serveHTTP(ctx, ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }), zerolog.Nop())
			}()
			if body, err := unixGet(path); err != nil || body != "ok" {
				t.Errorf("GET through the socket: %q, %v", body, err)
			}
			cancel()
			if err := <-errc; err != nil {
				t.Errorf("serveHTTP: %v", err)
			}
			if _, err := os.Lstat(path); err == nil {
				t.Errorf("socket %s left after the listener closed", path)
			}
		})
	}
	t.Run("not a socket", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "metrics.sock")
		if err := os.WriteFile(path, []byte("keep"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := listenMetrics(config.MetricsConfig{Network: "unix", Addr: path, SocketGID: -1}, nil)
		if err == nil || !strings.Contains(err.Error(), "is not a socket") {
			t.Errorf("listen over a regular file: %v, want an error saying it is not a socket", err)
		}
		if b, _ := os.ReadFile(path); string(b) != "keep" {
			t.Errorf("the file was changed: %q", b)
		}
	})
}
