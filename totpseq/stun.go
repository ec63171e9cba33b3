package totpseq

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// MaxSTUN bounds the STUN servers of one enrollment.
const MaxSTUN = 8

// ParseSTUNServer checks one STUN server, HOST:PORT: a DNS name, an IPv4
// address or a bracketed IPv6 address, and a port 1..65535. It returns the
// server in canonical form (a lowercased name, an address as netip prints
// it, brackets around IPv6).
func ParseSTUNServer(s string) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("%q: want HOST:PORT ([ADDR]:PORT for IPv6)", s)
	}
	if _, err := parsePort(port); err != nil {
		return "", fmt.Errorf("%q: %w", s, err)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return "", fmt.Errorf("%q: an address with a zone is not a server on the Internet", s)
		}
		if a.Is6() && !strings.HasPrefix(s, "[") {
			return "", fmt.Errorf("%q: write an IPv6 address in brackets: [ADDR]:PORT", s)
		}
		return net.JoinHostPort(a.Unmap().String(), port), nil
	}
	if !validDNSName(host) {
		return "", fmt.Errorf("%q: %q is not a host name or address", s, host)
	}
	return net.JoinHostPort(strings.ToLower(strings.TrimSuffix(host, ".")), port), nil
}

// validDNSName reports whether h is a DNS name of letters, digits, '-' and
// '_' in dot-separated labels of 1..63 bytes, 253 bytes at most.
func validDNSName(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// ParseSTUN parses a comma-separated list of STUN servers (the URI's stun
// parameter): each ParseSTUNServer, none twice, at most MaxSTUN. An error
// is a *ParamError naming the stun parameter.
func ParseSTUN(v string) ([]string, error) {
	if v == "" {
		return nil, paramErr("stun", `""`, "empty: leave the parameter out, or give HOST:PORT[,HOST:PORT...]")
	}
	return ParseSTUNList(strings.Split(v, ","))
}

// ParseSTUNList checks a list of STUN servers as ParseSTUN does and returns
// them in canonical form.
func ParseSTUNList(list []string) ([]string, error) {
	if len(list) > MaxSTUN {
		return nil, paramErr("stun", "", "%d servers: want at most %d", len(list), MaxSTUN)
	}
	out := make([]string, 0, len(list))
	for _, s := range list {
		c, err := ParseSTUNServer(s)
		if err != nil {
			return nil, &ParamError{Param: "stun", Err: err}
		}
		if slices.Contains(out, c) {
			return nil, paramErr("stun", strconv.Quote(s), "listed twice")
		}
		out = append(out, c)
	}
	return out, nil
}
