package e2e

import (
	"slices"
	"testing"

	"github.com/tknock/tknock/inet"
)

// TestNetwork checks the test network itself, without tknock: with no
// firewall, the client and the stranger reach the service, and raw knocks
// from the stranger, spoofed or not, arrive at the server as sent. The
// other tests' conclusions rest on this.
func TestNetwork(t *testing.T) {
	t.Parallel()
	for _, fam := range []family{v4, v6} {
		t.Run(fam.String(), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, fam)
			e.serve(sshPort)
			e.mustConnect(e.client, sshPort)
			e.mustConnect(e.stranger, sshPort)

			s := e.sniff(e.server, e.srvToStranger)
			ports := []uint16{knockLo, knockHi, 40123}
			e.sendRaw(e.stranger, e.spoofedAddr, inet.TCP, ports)
			e.sendRaw(e.stranger, e.strangerAddr, inet.UDP, ports)
			pkts := s.packets()
			if got := knocksFrom(pkts, e.spoofedAddr, inet.TCP); !slices.Equal(got, ports) {
				t.Errorf("SYNs from %v seen at the server: %v, want %v", e.spoofedAddr, got, ports)
			}
			if got := knocksFrom(pkts, e.strangerAddr, inet.UDP); !slices.Equal(got, ports) {
				t.Errorf("UDP knocks from %v seen at the server: %v, want %v", e.strangerAddr, got, ports)
			}
		})
	}
}
