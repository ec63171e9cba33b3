package main

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/totpseq"
)

// TestKnockSaysWhatHappened: `tknock HOST` confirms the door with the
// enrollment's check port and says so, or why not; the exit status is 0
// only when the door is open or nothing can confirm it.
func TestKnockSaysWhatHappened(t *testing.T) {
	en := enrollment(t, "ssh.example.com", inet.UDP, "ssh", "web", "vpn")
	en.Check = []totpseq.CheckPort{{Service: "ssh", Proto: inet.TCP, Port: 22}, {Service: "web", Proto: inet.TCP, Port: 443},
		{Service: "vpn", Proto: inet.UDP, Port: 51820}}
	noCheck := enrollment(t, "ssh.example.com", inet.UDP)
	dst := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr("192.0.2.10"), port) }

	for _, tc := range []struct {
		name   string
		en     *totpseq.Enrollment
		enroll []string // extra flags of tknock enroll
		open   []uint16 // the ports that accept once knocked
		args   []string
		code   int
		stdout []string // substrings; nil: empty
		stderr []string // substrings; nil: empty
	}{
		{name: "open", en: en, open: []uint16{22}, args: []string{"work"},
			stdout: []string{"ssh.example.com: ssh is open (port 22 accepted a connection after "}},
		{name: "another service", en: en, open: []uint16{443}, args: []string{"work", "web"},
			stdout: []string{"ssh.example.com: web is open (port 443 accepted"}},
		{name: "shut", en: en, args: []string{"work", "--wait-timeout", "200ms"}, code: 1,
			stderr: []string{"the door did not open: 192.0.2.10:22: the port accepted no connection within 200ms",
				"this machine's clock reads 2027-01-15 08:00:10 UTC",
				"its skew x 30 s (30 s with the default skew of 1)",
				"reason=clock_skew with offset=N, the clock being N periods of 30 s ahead (N < 0: behind; off by more than 5 periods, tknockd's default, no line)",
				"the knock was bound to 198.51.100.7", "user alice open service ssh with udp knocks"}},
		{name: "udp service", en: en, args: []string{"work", "vpn"},
			stdout: []string{"ssh.example.com: knocked for vpn; not confirmed: vpn is a UDP service (udp/51820), and only a TCP port can show that the door opened"}},
		{name: "no check port", en: noCheck, args: []string{"work"},
			stdout: []string{"ssh.example.com: knocked for ssh; not confirmed: the enrollment names no port to check for ssh (give one with --wait PORT"}},
		{name: "no wait", en: en, args: []string{"work", "--no-wait"}},
		{name: "--wait overrides", en: en, open: []uint16{2222}, args: []string{"work", "--wait", "2222"},
			stdout: []string{"ssh is open (port 2222 accepted"}},
		{name: "profile overrides", en: noCheck, enroll: []string{"--check-port", "2200"}, open: []uint16{2200}, args: []string{"work"},
			stdout: []string{"ssh is open (port 2200 accepted"}},
		{name: "profile overrides a service", en: en, enroll: []string{"--check-port", "web:8443"}, open: []uint16{8443}, args: []string{"work", "web"},
			stdout: []string{"web is open (port 8443 accepted"}},
		{name: "--wait and --no-wait", en: en, args: []string{"work", "--wait", "22", "--no-wait"}, code: 2,
			stderr: []string{"--wait and --no-wait can't be used together"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.mustRun(append([]string{"enroll", "--uri", tc.en.URI(), "--name", "work"}, tc.enroll...)...)
			e.net.open = map[netip.AddrPort]bool{}
			for _, p := range tc.open {
				e.net.open[dst(p)] = true
			}
			code, out, errOut := e.run(tc.args...)
			if code != tc.code {
				t.Errorf("tknock %v: exit %d, want %d; stdout %q, stderr %q", tc.args, code, tc.code, out, errOut)
			}
			check := func(what, got string, want []string) {
				if want == nil && got != "" {
					t.Errorf("tknock %v: %s %q, want nothing", tc.args, what, got)
				}
				for _, w := range want {
					if !strings.Contains(got, w) {
						t.Errorf("tknock %v: %s lacks %q:\n%s", tc.args, what, w, got)
					}
				}
			}
			check("stdout", out, tc.stdout)
			check("stderr", errOut, tc.stderr)
			if strings.Contains(errOut, "time window") {
				t.Errorf("tknock %v: the hint shows the window number:\n%s", tc.args, errOut)
			}
			if tc.code != 2 && len(e.net.knocks) == 0 {
				t.Errorf("tknock %v sent no knock", tc.args)
			}
		})
	}
}

// TestKnockThirdInWindow: the third knock in one window sends nothing, and
// exits 0 when the door an earlier knock opened is still open, so that
// `tknock h && ssh h` works; 1 when it is shut.
func TestKnockThirdInWindow(t *testing.T) {
	en := enrollment(t, "ssh.example.com", inet.TCP)
	en.Check = []totpseq.CheckPort{{Service: "ssh", Proto: inet.TCP, Port: 22}}
	e := newEnv(t)
	e.mustRun("enroll", "--uri", en.URI(), "--name", "work")
	e.net.open = map[netip.AddrPort]bool{netip.MustParseAddrPort("192.0.2.10:22"): true}
	for i := 1; i <= 3; i++ {
		e.net.reset()
		code, out, errOut := e.run("work")
		if code != 0 || !strings.Contains(out, "ssh is open") {
			t.Errorf("knock %d: exit %d, stdout %q, stderr %q; want 0 and open", i, code, out, errOut)
		}
		if earlier := strings.Contains(out, "opened by an earlier knock"); earlier != (i == 3) || (i == 3) != (len(e.net.knocks) == 0) {
			t.Errorf("knock %d: %d knocks sent, stdout %q", i, len(e.net.knocks), out)
		}
		e.now = e.now.Add(2 * time.Second)
	}
	// The door closed since: the fourth says so, and why no knock went.
	e.net.open = nil
	code, out, errOut := e.run("work", "--wait-timeout", "100ms")
	if code != 1 || out != "" || !strings.Contains(errOut, "the door did not open") || !strings.Contains(errOut, "no knock was sent: the current and the next time window were both used") {
		t.Errorf("fourth knock, door shut: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// With --no-wait nothing is checked: exit 1, and it says why.
	code, _, errOut = e.run("work", "--no-wait")
	if code != 1 || !strings.Contains(errOut, "without --no-wait, tknock checks whether it is") {
		t.Errorf("fire and forget, windows used: exit %d, stderr %q", code, errOut)
	}
}

// TestKnockByAddress: a profile is found by the addresses of its host
// (ssh 192.0.2.10 with tknock as the ProxyCommand), through the resolver.
func TestKnockByAddress(t *testing.T) {
	e := newEnv(t)
	e.mustRun("enroll", "--uri", enrollment(t, "ssh.example.com", inet.TCP).URI(), "--name", "work")
	e.mustRun("enroll", "--uri", enrollment(t, "ssh6.example.com", inet.TCP).URI(), "--name", "six")
	e.net.names["alias.example.net"] = []netip.Addr{netip.MustParseAddr("192.0.2.10")}
	for _, arg := range []string{"192.0.2.10", "alias.example.net", "2001:db8::10"} {
		e.net.reset()
		code, _, errOut := e.run(arg, "--no-wait")
		if code != 0 || len(e.net.knocks) == 0 {
			t.Errorf("tknock %s: exit %d, %d knocks, stderr %q", arg, code, len(e.net.knocks), errOut)
		}
	}
	code, _, errOut := e.run("192.0.2.77", "--no-wait")
	if code != 1 || !strings.Contains(errOut, `unknown profile "192.0.2.77": known profiles: six, work`) {
		t.Errorf("tknock 192.0.2.77: exit %d, stderr %q", code, errOut)
	}
}

// TestHelpVersionWords: help and version are words of the command line,
// not profile names.
func TestHelpVersionWords(t *testing.T) {
	e := newEnv(t)
	e.mustRun("enroll", "--uri", enrollment(t, "ssh.example.com", inet.TCP).URI(), "--name", "work")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"help"}, "Usage: tknock <command>"},
		{[]string{"help", "knock"}, "Usage: tknock knock"},
		{[]string{"help", "enroll"}, "Usage: tknock enroll"},
		{[]string{"version"}, "tknock "},
	} {
		code, out, errOut := e.run(tc.args...)
		if code != 0 || !strings.HasPrefix(out, tc.want) || len(e.net.knocks) != 0 {
			t.Errorf("tknock %v: exit %d, %d knocks, stdout %.60q, stderr %q; want 0 and %q", tc.args, code, len(e.net.knocks), out, errOut, tc.want)
		}
	}
}
