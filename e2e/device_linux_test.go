package e2e

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tknock/tknock/internal/testkit"
)

// tknockAs runs the client as another machine would: with its own
// configuration and cache directories (its own window memory).
func (e *env) tknockAs(machine string, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := e.client.Command(ctx, tknockBin(e.t), args...)
	cmd.Env = append(cmd.Environ(),
		"TKNOCK_CONFIG_DIR="+filepath.Join(e.dir, machine+"-config"),
		"TKNOCK_CACHE_DIR="+filepath.Join(e.dir, machine+"-cache"),
	)
	var o, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &se
	err = cmd.Run()
	return o.String(), se.String(), err
}

// TestDevices: one person's laptop and phone behind one address. A knock
// bound to the wrong address opens nothing, and the client says so. With an
// enrollment per device (tknockd enroll alice --device phone) both knock
// in the same window and each opens the door, and the client says so
// (the service's check port comes from the enrollment). With one
// enrollment shared by both, the second device's knock in that window is
// a replay: the daemon logs reason=replay and opens nothing for it.
func TestDevices(t *testing.T) {
	e := newEnv(t, v4)
	e.serve(sshPort)
	cfg := e.writeConfig(config{})
	if err := os.MkdirAll(filepath.Join(e.dir, "etc", "users"), 0o700); err != nil {
		t.Fatal(err)
	}
	laptop := e.enrollByDaemon(cfg, "alice", "--device", "laptop")
	phone := e.enrollByDaemon(cfg, "alice", "--device", "phone")
	shared := e.enrollByDaemon(cfg, "bob")
	if laptop.enr.Name != "alice@laptop" || len(phone.enr.Check) != 1 || phone.enr.Check[0].String() != "ssh:tcp/2222" {
		t.Fatalf("enrollments: %q, check ports %v", laptop.enr.Name, phone.enr.Check)
	}
	d := e.startDaemon(cfg)
	host := e.serverAddr.String()
	// Leave room in the window for every knock below and gap_max (3 s).
	testkit.AwayFromBoundary(30, 12*time.Second, 200*time.Millisecond)

	// Bound to an address the server does not see, the knock opens
	// nothing, and the client says so: exit 1, and what to check.
	out, errOut, err := e.tknockAs("laptop", "knock", "--enrollment", laptop.clientFile, "--source", "198.51.100.99", "--wait-timeout", "1500ms", host)
	if err == nil || out != "" || !strings.Contains(errOut, "the door did not open: "+host+":2222") ||
		!strings.Contains(errOut, "the knock was bound to 198.51.100.99") || !strings.Contains(errOut, "reason=clock_skew") {
		t.Errorf("knock from the wrong source: %v, stdout %q, stderr %q; want exit 1 and the hints", err, out, errOut)
	}

	m := d.mark()
	for _, dev := range []struct {
		machine string
		u       *user
	}{{"laptop", laptop}, {"phone", phone}} {
		out, errOut, err := e.tknockAs(dev.machine, "knock", "--enrollment", dev.u.clientFile, host)
		if err != nil || !strings.HasPrefix(out, host+": ssh is open (port 2222 accepted a connection after ") {
			t.Errorf("%s: tknock %s: %v, stdout %q, stderr %q; want ssh is open", dev.machine, host, err, out, errOut)
		}
		if _, err := d.waitFrom(m, 5*time.Second, "an opening for "+dev.u.enr.Name, isOpen(dev.u.enr.Name, "ssh")); err != nil {
			t.Error(err)
		}
	}

	// One enrollment on two machines: the second's knock, after gap_max
	// and in the same window, is a replay.
	m = d.mark()
	if _, errOut, err := e.tknockAs("laptop", "knock", "--no-wait", "--enrollment", shared.clientFile, host); err != nil {
		t.Fatalf("bob's laptop: %v: %s", err, errOut)
	}
	if _, err := d.waitFrom(m, 5*time.Second, "an opening for bob", isOpen("bob", "ssh")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3*time.Second + 500*time.Millisecond)
	m = d.mark()
	if _, errOut, err := e.tknockAs("phone", "knock", "--no-wait", "--enrollment", shared.clientFile, host); err != nil {
		t.Fatalf("bob's phone: %v: %s", err, errOut)
	}
	l, err := d.waitFrom(m, 5*time.Second, "a replay rejection for bob's phone", isReject("replay"))
	if err != nil {
		t.Fatal(err)
	}
	if l.str("user") != "bob" {
		t.Errorf("replay line for user %q, want bob: %s", l.str("user"), l.raw)
	}
	if got := d.since(m, isEvent("open")); len(got) != 0 {
		t.Errorf("the shared enrollment's second knock in the window opened: %s", got[0].raw)
	}
}
