package client

import (
	"testing"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/totpseq"
)

// testEnrollment is a valid enrollment for host with a fixed secret.
func testEnrollment(t testing.TB, name, host string, proto inet.Proto, services ...string) *totpseq.Enrollment {
	t.Helper()
	p := totpseq.Defaults()
	p.Secret = []byte("0123456789abcdef0123456789abcdef")
	p.Realm = "realm.example.org"
	p.Proto = proto
	if len(services) > 0 {
		p.Services = services
	}
	e := &totpseq.Enrollment{Name: name, Host: host, Params: p}
	if err := e.Validate(); err != nil {
		t.Fatal(err)
	}
	return e
}
