package client

import (
	"testing"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/internal/testkit"
	"github.com/tknock/tknock/totpseq"
)

// testEnrollment is a valid enrollment for host with a fixed secret.
func testEnrollment(t testing.TB, name, host string, proto inet.Proto, services ...string) *totpseq.Enrollment {
	t.Helper()
	return testkit.Enrollment(t, name, host, func(p *totpseq.Params) {
		p.Proto = proto
		if len(services) > 0 {
			p.Services = services
		}
	})
}
