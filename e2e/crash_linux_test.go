package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/tknock/tknock/inet"
)

// TestKill9 kills the daemon with SIGKILL, twice. The firewall fails
// closed: the protected port stays closed to the stranger and a live grant
// ends on time, with no daemon left to remove it. A restarted daemon keeps
// a grant that is still live and accepts new knocks.
func TestKill9(t *testing.T) {
	forFamilies(t, func(t *testing.T, e *env) {
		const (
			period  = 5 // seconds: the three knocks below fall in at most two windows each
			openFor = 5 * time.Second
		)
		e.serve(sshPort)
		alice := e.enroll("alice", params{Proto: inet.TCP, Period: period})
		cfg := e.writeConfig(config{OpenFor: openFor, DropKnocks: ptr(true)})

		d1 := e.startDaemon(cfg)
		m := d1.mark()
		e.knock(alice, "ssh")
		if _, err := d1.waitFrom(m, 5*time.Second, "an opening for alice", isOpen("alice", "ssh")); err != nil {
			t.Fatal(err)
		}
		opened := time.Now()
		d1.kill9()
		e.mustRefuse(e.stranger, sshPort)
		e.mustConnect(e.client, sshPort)
		sleepUntil(opened.Add(openFor - 1500*time.Millisecond))
		e.mustConnect(e.client, sshPort)
		sleepUntil(opened.Add(openFor + time.Second))
		e.mustRefuse(e.client, sshPort)
		e.mustRefuse(e.stranger, sshPort)

		d2 := e.startDaemon(cfg)
		m = d2.mark()
		e.knock(alice, "ssh")
		if _, err := d2.waitFrom(m, 5*time.Second, "an opening for alice by the restarted daemon", isOpen("alice", "ssh")); err != nil {
			t.Fatal(err)
		}
		d2.kill9()
		d3 := e.startDaemon(cfg)
		e.mustConnect(e.client, sshPort)
		e.mustRefuse(e.stranger, sshPort)
		if out, errOut, code := e.tknockd("status", "--config", cfg); code != 0 || !strings.Contains(out, e.clientAddr.String()) {
			t.Errorf("tknockd status after a restart: exit %d, stdout:\n%s\nstderr:\n%s\nwant the live grant of %v", code, out, errOut, e.clientAddr)
		}
		m = d3.mark()
		e.knock(alice, "ssh")
		if _, err := d3.waitFrom(m, 5*time.Second, "an opening for alice by the daemon restarted again", isOpen("alice", "ssh")); err != nil {
			t.Fatal(err)
		}
		e.mustConnect(e.client, sshPort)
	})
}
