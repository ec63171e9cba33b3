package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"
)

// cgnat is the shared address space of carrier-grade NAT (RFC 6598).
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// Private reports whether a is an address that no Internet host sees as a
// packet's source, so that traffic from it to the Internet crosses a NAT:
// RFC 1918 (10/8, 172.16/12, 192.168/16), carrier-grade NAT (100.64/10),
// unique local IPv6 (fc00::/7) and link-local (169.254/16, fe80::/10).
// Loopback is not: it never leaves the machine.
func Private(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsPrivate() || cgnat.Contains(a) || a.IsLinkLocalUnicast()
}

// behindNAT reports whether the server at dst sees another source address
// than src: src is private and dst is not. When both are private (a LAN,
// a VPN, a tailnet in 100.64/10) the server sees src itself.
func behindNAT(src, dst netip.Addr) bool {
	return Private(src) && !Private(dst) && !dst.IsLoopback()
}

// Source origins, for Result.SourceFrom.
const (
	FromFlag     = "given (--source)"
	FromOutbound = "outbound address"
)

// NoSTUNError is returned when the outbound address is behind NAT and no
// STUN server is known, so the address the server sees is unknown.
type NoSTUNError struct {
	Local, Dst netip.Addr
}

func (e *NoSTUNError) Error() string {
	return fmt.Sprintf("this machine's address %v towards %v is private: a NAT router between them changes it, "+
		"so the knock must be bound to the router's public address, and no STUN server is known to ask for it; "+
		"give one with --stun HOST:PORT (or ask the server's admin for an enrollment with stun=), "+
		"or give the public address with --source", e.Local, e.Dst)
}

// source chooses the source address to bind into a sequence for a knock
// at dst that leaves from local: local itself, unless a NAT is between
// them (behindNAT); then the address a STUN server sees, from the cache
// when it has a fresh answer. from says where the address came from.
func (k *Knocker) source(ctx context.Context, local, dst netip.Addr, servers []string) (src netip.Addr, from string, err error) {
	if !behindNAT(local, dst) {
		return local, FromOutbound, nil
	}
	if len(servers) == 0 {
		return netip.Addr{}, "", &NoSTUNError{Local: local, Dst: dst}
	}
	key := NATKey(local)
	now := k.now()
	if k.NATCache != nil {
		if e, ok := k.NATCache.Get(key, now); ok {
			age := now.Sub(time.Unix(e.At, 0)).Round(time.Second)
			return e.Mapped, fmt.Sprintf("stun cache (server %s, %v old)", e.Server, age), nil
		}
	}
	var s Mapper = k.STUN
	if s == nil {
		s = &STUN{Resolver: k.resolver()}
	}
	start := time.Now()
	mapped, server, err := s.Mapped(ctx, servers, local)
	k.Log.Debug().Strs("servers", servers).Stringer("local", local).Str("answered", server).
		Stringer("took", time.Since(start).Round(time.Microsecond)).Err(err).Msg("stun")
	if err != nil {
		return netip.Addr{}, "", fmt.Errorf("this machine's address %v is private (behind NAT) and no STUN server told the public one: %w; "+
			"give the public address with --source, or another server with --stun HOST:PORT", local, err)
	}
	if k.NATCache != nil {
		if err := k.NATCache.Put(key, NATEntry{Mapped: mapped, Server: server, At: now.Unix()}, now); err != nil {
			k.Log.Warn().Err(err).Msg("stun cache not saved")
		}
	}
	return mapped, "stun server " + server, nil
}

// NATKey is the network a STUN answer is cached for: the local address
// the knock leaves from (with its IPv6 zone). Joining another network
// nearly always changes it (a new DHCP lease, another prefix); NATTTL
// bounds the harm when two networks hand out the same address.
func NATKey(local netip.Addr) string { return local.String() }

// NATTTL is how long a STUN answer is used for a network.
const NATTTL = 2 * time.Minute

// NATCache keeps STUN answers per network (NATKey) for NATTTL, in one small
// JSON file of mode 0600, so that a knock followed by ssh's ProxyCommand
// asks once. A corrupt or unreadable file counts as empty.
type NATCache struct {
	Path string // the file; its directory is created (0700) on first write
}

// NATCacheFile is the name of the cache's file inside the cache directory.
const NATCacheFile = "stun.json"

// NATEntry is one cached answer.
type NATEntry struct {
	Mapped netip.Addr `json:"mapped"` // the address the STUN server saw
	Server string     `json:"server"` // which server said so
	At     int64      `json:"at"`     // when, Unix seconds
}

type natFile struct {
	Version int                 `json:"version"`
	Entries map[string]NATEntry `json:"entries"`
}

// Get returns the entry for key when it is younger than NATTTL at now (and
// not from the future).
func (c *NATCache) Get(key string, now time.Time) (NATEntry, bool) {
	e, ok := c.read().Entries[key]
	if !ok || !e.Mapped.IsValid() {
		return NATEntry{}, false
	}
	age := now.Sub(time.Unix(e.At, 0))
	if age < 0 || age >= NATTTL {
		return NATEntry{}, false
	}
	return e, true
}

// Put stores e for key and drops the entries that expired at now.
func (c *NATCache) Put(key string, e NATEntry, now time.Time) error {
	f := c.read()
	for k, old := range f.Entries {
		if now.Sub(time.Unix(old.At, 0)) >= NATTTL {
			delete(f.Entries, k)
		}
	}
	f.Entries[key] = e
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(c.Path, append(b, '\n')); err != nil {
		return fmt.Errorf("stun cache: %w", err)
	}
	return nil
}

func (c *NATCache) read() *natFile {
	f := &natFile{}
	if b, err := os.ReadFile(c.Path); err == nil {
		if json.Unmarshal(b, f) != nil || f.Version != 1 {
			f = &natFile{}
		}
	}
	f.Version = 1
	if f.Entries == nil {
		f.Entries = map[string]NATEntry{}
	}
	return f
}

// IsNoSTUN reports whether err says that a knock needs a STUN server and
// none is known.
func IsNoSTUN(err error) bool {
	var e *NoSTUNError
	return errors.As(err, &e)
}

// joinServers merges STUN server lists, keeping the first of duplicates.
func joinServers(lists ...[]string) []string {
	var out []string
	seen := map[string]bool{}
	for _, l := range lists {
		for _, s := range l {
			k := strings.ToLower(s)
			if !seen[k] {
				seen[k] = true
				out = append(out, s)
			}
		}
	}
	return out
}
