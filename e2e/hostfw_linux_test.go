package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tknock/tknock/inet"
)

// TestHostFirewall is deploy/README's recipe for a host whose own firewall
// drops by default and accepts ssh (the usual ufw set-up): check-config
// warns while that firewall does not accept the protected port, and once
// it does (the recipe), a knock opens the port for the client and the
// stranger stays out.
func TestHostFirewall(t *testing.T) {
	t.Parallel()
	e := newEnv(t, v4)
	e.serve(sshPort)
	alice := e.enroll("alice", params{Proto: inet.TCP})
	cfg := e.writeConfig(config{OpenFor: time.Minute, DropKnocks: ptr(true)})
	host := func(accept string) string {
		return e.writeFile("host.nft", fmt.Sprintf(`flush ruleset
table inet host {
	chain input {
		type filter hook input priority filter; policy drop;
		iif "lo" accept
		ct state established,related accept
		tcp dport 22 accept
		%s
	}
}
`, accept), 0o600)
	}

	e.server.MustRun(t, "nft", "-f", host(""))
	_, errOut, code := e.tknockd("check-config", "--config", cfg)
	want := fmt.Sprintf("warning: table inet host chain input has policy drop and accepts none of tcp/%d", sshPort)
	if code != 0 || !strings.Contains(errOut, want) {
		t.Errorf("check-config with a host firewall that drops tcp/%d: exit %d, stderr:\n%s\nwant exit 0 and %q", sshPort, code, errOut, want)
	}

	// The recipe: the host firewall accepts the protected port; tknock's
	// table decides who reaches it.
	e.server.MustRun(t, "nft", "-f", host(fmt.Sprintf("tcp dport %d accept", sshPort)))
	if _, errOut, code := e.tknockd("check-config", "--config", cfg); code != 0 || strings.Contains(errOut, "warning") {
		t.Errorf("check-config with the recipe's host firewall: exit %d, stderr:\n%s\nwant no warning", code, errOut)
	}
	d := e.startDaemon(cfg)
	e.mustRefuse(e.stranger, sshPort)
	e.mustRefuse(e.client, sshPort)
	e.knockOpens(d, alice, "ssh")
	e.mustConnect(e.client, sshPort)
	e.mustRefuse(e.stranger, sshPort)
}
