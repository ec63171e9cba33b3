package totpseq

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/tknock/tknock/inet"
)

// CheckPort is the port a client connects to, after a knock for Service, to
// confirm that the door opened (PROTOCOL.md section 5, parameter check).
// Only a TCP port can confirm anything: a UDP one says that the service
// cannot be confirmed.
type CheckPort struct {
	Service string
	Proto   inet.Proto
	Port    uint16
}

// String returns the check as the URI writes it: "ssh:tcp/22".
func (c CheckPort) String() string {
	return c.Service + ":" + c.Proto.String() + "/" + strconv.Itoa(int(c.Port))
}

// ParseCheckPort parses one SERVICE:PROTO/PORT, such as "ssh:tcp/22".
func ParseCheckPort(s string) (CheckPort, error) {
	svc, ep, ok := strings.Cut(s, ":")
	if !ok {
		return CheckPort{}, fmt.Errorf("%q: want SERVICE:PROTO/PORT, such as ssh:tcp/22", s)
	}
	if !ValidService(svc) {
		return CheckPort{}, fmt.Errorf("%q: bad service name %q: want [a-z0-9][a-z0-9._-]{0,62}", s, svc)
	}
	proto, port, ok := strings.Cut(ep, "/")
	if !ok {
		return CheckPort{}, fmt.Errorf("%q: want SERVICE:PROTO/PORT, such as ssh:tcp/22", s)
	}
	p, err := inet.ParseProto(proto)
	if err != nil {
		return CheckPort{}, fmt.Errorf("%q: protocol %w", s, err)
	}
	n, err := parsePort(port)
	if err != nil {
		return CheckPort{}, fmt.Errorf("%q: %w", s, err)
	}
	return CheckPort{Service: svc, Proto: p, Port: n}, nil
}

// ParseCheck parses the URI's check parameter: a comma-separated list of
// ParseCheckPort. An error is a *ParamError naming the check parameter.
// Enrollment.Validate checks the list against the services.
func ParseCheck(v string) ([]CheckPort, error) {
	if v == "" {
		return nil, paramErr("check", `""`, "empty: leave the parameter out, or give SERVICE:PROTO/PORT[,...]")
	}
	var out []CheckPort
	for _, s := range strings.Split(v, ",") {
		c, err := ParseCheckPort(s)
		if err != nil {
			return nil, &ParamError{Param: "check", Err: err}
		}
		out = append(out, c)
	}
	return out, nil
}

// validChecks checks that every check names a service of the enrollment,
// at most once, with a valid protocol and port.
func validChecks(checks []CheckPort, services []string) error {
	for i, c := range checks {
		switch {
		case !slices.Contains(services, c.Service):
			return paramErr("check", strconv.Quote(c.String()), "service %s is not in services (%s)", c.Service, strings.Join(services, ","))
		case slices.ContainsFunc(checks[:i], func(d CheckPort) bool { return d.Service == c.Service }):
			return paramErr("check", strconv.Quote(c.String()), "service %s listed twice", c.Service)
		case c.Proto != inet.TCP && c.Proto != inet.UDP:
			return paramErr("check", strconv.Quote(c.Service), "protocol %v: want tcp or udp", c.Proto)
		case c.Port == 0:
			return paramErr("check", strconv.Quote(c.String()), "port 0: want 1..65535")
		}
	}
	return nil
}

// CheckFor returns the check port of service s, and whether the enrollment
// has one.
func (e *Enrollment) CheckFor(s string) (CheckPort, bool) {
	i := slices.IndexFunc(e.Check, func(c CheckPort) bool { return c.Service == s })
	if i < 0 {
		return CheckPort{}, false
	}
	return e.Check[i], true
}

// SetCheck sets the check port of c.Service, replacing one there was. The
// service must be one of the enrollment's.
func (e *Enrollment) SetCheck(c CheckPort) error {
	if !e.HasService(c.Service) {
		return fmt.Errorf("check port %v: no service %q in this enrollment: it has %s", c, c.Service, strings.Join(e.Services, ","))
	}
	if i := slices.IndexFunc(e.Check, func(d CheckPort) bool { return d.Service == c.Service }); i >= 0 {
		e.Check[i] = c
		return nil
	}
	e.Check = append(e.Check, c)
	return nil
}
