package e2e

import (
	"bytes"
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// tknock runs the client with args inside the client namespace, with its
// configuration and cache directories inside the test's scratch directory,
// and returns stdout. A non-zero exit fails the test.
func (e *env) tknock(args ...string) string {
	e.t.Helper()
	out, errOut, err := e.tknockResult(args...)
	if err != nil {
		e.t.Fatalf("tknock %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// tknockResult runs the client and returns its output and error.
func (e *env) tknockResult(args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := e.client.Command(ctx, tknockBin(e.t), args...)
	cmd.Env = append(cmd.Environ(),
		"TKNOCK_CONFIG_DIR="+filepath.Join(e.dir, "client-config"),
		"TKNOCK_CACHE_DIR="+filepath.Join(e.dir, "client-cache"),
	)
	var o, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &se
	err = cmd.Run()
	return o.String(), se.String(), err
}

// knock runs `tknock knock --enrollment FILE HOST SERVICE` from the
// client: the sequence for now (or the next window after a knock in this
// one), sent with the client's own address.
func (e *env) knock(u *user, service string, extra ...string) {
	e.t.Helper()
	e.tknock(append([]string{"knock", "--enrollment", u.clientFile, e.serverAddr.String(), service}, extra...)...)
}

// sequence asks the client for the ports of u's sequence for service, for
// the source address src at time at (`tknock print`).
func (e *env) sequence(u *user, service string, src string, at time.Time) []uint16 {
	e.t.Helper()
	out := e.tknock("print", "--enrollment", u.clientFile, "--service", service, "--source", src, "--at", strconv.FormatInt(at.Unix(), 10))
	fields := strings.Fields(out)
	if len(fields) != u.enr.Length {
		e.t.Fatalf("tknock print: %q: want %d ports", out, u.enr.Length)
	}
	ports := make([]uint16, len(fields))
	for i, f := range fields {
		n, err := strconv.ParseUint(f, 10, 16)
		if err != nil {
			e.t.Fatalf("tknock print: %q: %v", out, err)
		}
		ports[i] = uint16(n)
	}
	return ports
}
