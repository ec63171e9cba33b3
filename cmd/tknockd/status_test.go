package main

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/internal/config/configtest"
	"github.com/tknock/tknock/nft"
)

func TestWriteGrants(t *testing.T) {
	c := configtest.New(t, "")
	var out strings.Builder
	e := &env{stdout: &out}
	if err := writeGrants(e, c, nil); err != nil || out.String() != "no live grants\n" {
		t.Errorf("no grants: %q, %v", out.String(), err)
	}
	out.Reset()
	grants := []nft.Grant{
		{Src: netip.MustParseAddr("192.0.2.7"), Endpoint: nft.Endpoint{Proto: inet.TCP, Port: 22}, Timeout: 30 * time.Second, Remaining: 12345 * time.Millisecond},
		{Src: netip.MustParseAddr("2001:db8::7"), Endpoint: nft.Endpoint{Proto: inet.TCP, Port: 443}, Timeout: 30 * time.Second, Remaining: 29 * time.Second},
		{Src: netip.MustParseAddr("198.51.100.9"), Endpoint: nft.Endpoint{Proto: inet.UDP, Port: 53}},
	}
	if err := writeGrants(e, c, grants); err != nil {
		t.Fatal(err)
	}
	want := `SOURCE        ENDPOINT  SERVICE  EXPIRES IN
192.0.2.7     tcp/22    ssh      12.3s
2001:db8::7   tcp/443   web      29s
198.51.100.9  udp/53    -        never
`
	if out.String() != want {
		t.Errorf("grants table:\n%s\nwant:\n%s", out.String(), want)
	}
}
