package config

import (
	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/totpseq"
)

// CheckPorts returns the enrollment's check ports (PROTOCOL.md section 5,
// parameter check) for services: for each, the first TCP endpoint of its
// [services] entry, which a client can connect to, or its first endpoint
// when it has only UDP ones, which tells the client that the service
// cannot be confirmed. Services that are not configured are left out.
func (c *Config) CheckPorts(services []string) []totpseq.CheckPort {
	var out []totpseq.CheckPort
	for _, name := range services {
		svc, ok := c.Services[name]
		if !ok || len(svc.Endpoints) == 0 {
			continue
		}
		ep := svc.Endpoints[0]
		for _, e := range svc.Endpoints {
			if e.Proto == inet.TCP {
				ep = e
				break
			}
		}
		proto := inet.UDP
		if ep.Proto == inet.TCP {
			proto = inet.TCP
		}
		out = append(out, totpseq.CheckPort{Service: name, Proto: proto, Port: ep.Port})
	}
	return out
}
