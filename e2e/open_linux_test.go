package e2e

import (
	"testing"
	"time"

	"github.com/tknock/tknock/client"
	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/totpseq"
)

// forFamilies runs test once for IPv4 and once for IPv6, in parallel, each
// in its own namespaces.
func forFamilies(t *testing.T, test func(t *testing.T, e *env)) {
	t.Parallel()
	for _, fam := range []family{v4, v6} {
		t.Run(fam.String(), func(t *testing.T) {
			t.Parallel()
			test(t, newEnv(t, fam))
		})
	}
}

// TestOpenAndExpire is the life of one grant: the protected port is closed,
// a knock opens it for the client only, and after open_for it is closed
// again for new connections while the connection made during the grant
// lives on.
func TestOpenAndExpire(t *testing.T) {
	forFamilies(t, func(t *testing.T, e *env) {
		const openFor = 4 * time.Second
		e.serve(sshPort)
		alice := e.enroll("alice", params{Proto: inet.TCP})
		d := e.startDaemon(e.writeConfig(config{OpenFor: openFor, DropKnocks: ptr(true)}))

		e.mustRefuse(e.client, sshPort)
		e.mustRefuse(e.stranger, sshPort)

		m := d.mark()
		e.knock(alice, "ssh")
		open, err := d.waitFrom(m, 5*time.Second, "an opening for alice", isOpen("alice", "ssh"))
		if err != nil {
			t.Fatal(err)
		}
		opened := time.Now()
		if got := open.str("src"); got != e.clientAddr.String() {
			t.Errorf("opening for src %q, want the client's %v", got, e.clientAddr)
		}
		if got := open.str("offset"); got != "0" {
			t.Errorf("opening at window offset %s, want 0 (the client's clock is the server's)", got)
		}

		held := e.mustConnect(e.client, sshPort)
		e.mustRefuse(e.stranger, sshPort)

		sleepUntil(opened.Add(openFor + time.Second))
		e.mustRefuse(e.client, sshPort)
		if err := echo(held, "still here"); err != nil {
			t.Errorf("connection established during the grant, after the grant expired: %v; want it alive", err)
		}
		if n := len(d.since(0, isEvent("open"))); n != 1 {
			t.Errorf("%d openings logged, want 1", n)
		}
	})
}

// TestModesAndUsers has two users with different knock protocols and
// services: alice knocks with TCP SYNs for ssh, bob with UDP datagrams for
// web. Each knock opens its own service and nothing else; the knocks go
// one after the other from the client, with the first grant expired before
// the second knock, so each opening is seen on its own.
func TestModesAndUsers(t *testing.T) {
	forFamilies(t, func(t *testing.T, e *env) {
		const openFor = 3 * time.Second
		e.serve(sshPort)
		e.serve(webPort)
		alice := e.enroll("alice", params{Proto: inet.TCP, Services: []string{"ssh"}})
		bob := e.enroll("bob", params{Proto: inet.UDP, Services: []string{"web"}})
		services := map[string][]string{"ssh": {"tcp/2222"}, "web": {"tcp/8080"}}
		d := e.startDaemon(e.writeConfig(config{OpenFor: openFor, Services: services, DropKnocks: ptr(true)}))
		s := e.sniff(e.server, e.srvToClient)

		for _, step := range []struct {
			u             *user
			service       string
			open, refused uint16
		}{
			{alice, "ssh", sshPort, webPort},
			{bob, "web", webPort, sshPort},
		} {
			name := step.u.enr.Name
			m := d.mark()
			e.knock(step.u, step.service)
			open, err := d.waitFrom(m, 5*time.Second, "an opening for "+name, isOpen(name, step.service))
			if err != nil {
				t.Fatal(err)
			}
			opened := time.Now()
			if got := open.str("src"); got != e.clientAddr.String() {
				t.Errorf("%s's opening for src %q, want %v", name, got, e.clientAddr)
			}
			e.mustConnect(e.client, step.open)
			e.mustRefuse(e.client, step.refused)
			e.mustRefuse(e.stranger, step.open)
			if got := d.since(m, isEvent("open")); len(got) != 1 {
				t.Errorf("%s's knock: %d openings, want 1", name, len(got))
			}
			sleepUntil(opened.Add(openFor + time.Second))
			e.mustRefuse(e.client, step.open)
		}

		// The knocks were of the protocol each enrollment says.
		pkts := s.packets()
		if got := knocksFrom(pkts, e.clientAddr, inet.TCP); len(got) != alice.enr.Length*client.DefaultRounds {
			t.Errorf("TCP SYN knocks %v, want alice's %d, %d times (the client's rounds)", got, alice.enr.Length, client.DefaultRounds)
		}
		if got := knocksFrom(pkts, e.clientAddr, inet.UDP); len(got) != bob.enr.Length*client.DefaultRounds {
			t.Errorf("UDP knocks %v, want bob's %d, %d times (the client's rounds)", got, bob.enr.Length, client.DefaultRounds)
		}

		// alice's own sequence for web, which her enrollment does not
		// name, opens nothing: the daemon knows her only for ssh.
		p := alice.enr.Params
		p.Services = []string{"web"}
		seq, err := totpseq.Sequence(&p, "web", totpseq.Window(time.Now(), p.Period), e.clientAddr)
		if err != nil {
			t.Fatal(err)
		}
		m := d.mark()
		e.sendRaw(e.client, e.clientAddr, inet.TCP, seq)
		e.marker(d, e.client, e.clientAddr, alice)
		if got := d.since(m, isEvent("open")); len(got) != 0 {
			t.Errorf("alice's sequence for a service she is not enrolled for opened: %s", got[0].raw)
		}
		e.mustRefuse(e.client, webPort)
	})
}

func ptr[T any](v T) *T { return &v }
