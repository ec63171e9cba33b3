package main

import (
	"context"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tknock/tknock/internal/config/configtest"
	"github.com/tknock/tknock/internal/nstest"
	"github.com/tknock/tknock/nft"
)

// TestStatusCommand grants access in a fresh namespace's table, then runs
// `tknockd status` there: it lists the grant with its service and the
// time left.
func TestStatusCommand(t *testing.T) {
	ns := nstest.New(t)
	c := configtest.New(t, "")
	t.Setenv("RUNTIME_DIRECTORY", t.TempDir())
	var out, errOut strings.Builder
	var code int
	err := ns.Do(func() error {
		tab, err := nft.Open(c.NFT(nil))
		if err != nil {
			return err
		}
		defer tab.Close()
		if err := tab.Apply(c.NFT(nil)); err != nil {
			return err
		}
		if err := tab.Allow(netip.MustParseAddr("192.0.2.7"), c.Services["web"], time.Minute); err != nil {
			return err
		}
		code = run(context.Background(), []string{"status", "--config", c.Path}, &out, &errOut)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 {
		t.Fatalf("status: exit %d: %s", code, errOut.String())
	}
	var rows []string
	for line := range strings.Lines(out.String()) {
		f := strings.Fields(line)
		if len(f) == 4 {
			if d, err := time.ParseDuration(f[3]); err == nil && d > 50*time.Second && d <= time.Minute {
				f[3] = "about 1m"
			}
		}
		rows = append(rows, strings.Join(f, " "))
	}
	want := []string{"SOURCE ENDPOINT SERVICE EXPIRES IN", "192.0.2.7 tcp/80 web about 1m", "192.0.2.7 tcp/443 web about 1m",
		"daemon: no state in " + os.Getenv("RUNTIME_DIRECTORY") + ": tknockd is not running for table inet tknock (start it: systemctl start tknockd)"}
	if strings.Join(rows, "\n") != strings.Join(want, "\n") {
		t.Errorf("status output:\n%s\nwant rows:\n%s", out.String(), strings.Join(want, "\n"))
	}

	// Without the table: a clear error.
	ns2 := nstest.New(t)
	out.Reset()
	errOut.Reset()
	ns2.Do(func() error {
		code = run(context.Background(), []string{"status", "--config", c.Path}, &out, &errOut)
		return nil
	})
	// Without the table: what is wrong and what to run, in the
	// administrator's words (no names from inside the code).
	if code != 1 || !strings.Contains(errOut.String(), "table inet tknock does not exist in this network namespace") ||
		!strings.Contains(errOut.String(), "systemctl start tknockd") || strings.Contains(errOut.String(), "Ensure") {
		t.Errorf("status without a table: exit %d, stderr %q", code, errOut.String())
	}
}
