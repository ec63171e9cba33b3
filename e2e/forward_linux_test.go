package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/internal/nstest"
)

// TestForwardedPort protects a port the server forwards by DNAT to a
// "container" (a namespace behind it, as Docker -p 8080:80 does): the
// service names tcp/8080, strangers cannot reach it, a knock opens it for
// the client only.
func TestForwardedPort(t *testing.T) {
	forFamilies(t, func(t *testing.T, e *env) {
		ctr := nstest.New(t)
		e.link(ctr, "d", []string{"10.99.0.1/24", "fd00:99::1/64"}, []string{"10.99.0.2/24", "fd00:99::2/64"})
		ctr.MustRun(t, "ip", "route", "add", "default", "via", "10.99.0.1")
		ctr.MustRun(t, "ip", "-6", "route", "add", "default", "via", "fd00:99::1")
		e.server.MustRun(t, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
		e.server.MustRun(t, "nft", "-f", e.writeFile("dnat.nft", fmt.Sprintf(`table inet docker {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr %s tcp dport %d dnat ip to 10.99.0.2:80
		ip6 daddr %s tcp dport %d dnat ip6 to [fd00:99::2]:80
	}
}
`, addrs[v4].server, webPort, addrs[v6].server, webPort), 0o600))
		e.serveIn(ctr, 80)
		bob := e.enroll("bob", params{Proto: inet.TCP, Services: []string{"web"}})
		services := map[string][]string{"ssh": {fmt.Sprintf("tcp/%d", sshPort)}, "web": {fmt.Sprintf("tcp/%d", webPort)}}
		d := e.startDaemon(e.writeConfig(config{OpenFor: time.Minute, Services: services, DropKnocks: ptr(true)}))

		e.mustRefuse(e.client, webPort)
		e.mustRefuse(e.stranger, webPort)
		e.knockOpens(d, bob, "web")
		e.mustConnect(e.client, webPort)
		e.mustRefuse(e.stranger, webPort)
	})
}
