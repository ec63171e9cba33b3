package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/totpseq"
)

func TestCheckPorts(t *testing.T) {
	c, err := Parse("f.toml", []byte(`realm = "gw.example.org"
[services]
ssh = ["tcp/22"]
web = ["udp/443", "tcp/443", "tcp/80"]
vpn = ["udp/51820"]
`))
	if err != nil {
		t.Fatal(err)
	}
	got := c.CheckPorts([]string{"vpn", "web", "ssh", "nosuch"})
	want := []totpseq.CheckPort{{Service: "vpn", Proto: inet.UDP, Port: 51820},
		{Service: "web", Proto: inet.TCP, Port: 443}, {Service: "ssh", Proto: inet.TCP, Port: 22}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("CheckPorts (-want +got):\n%s", diff)
	}
}
