// Package config loads tknockd's configuration file (TOML, documented in
// deploy/tknockd.toml) and its users directory. It validates them by
// calling the libraries' own validators (listener.Config, nft.Config,
// totpseq.Params) and names the file, line and field of every problem; it
// states no limit or default of its own that a library already has.
package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
	"github.com/rs/zerolog"

	"github.com/tknock/tknock/inet"
	"github.com/tknock/tknock/listener"
	"github.com/tknock/tknock/nft"
	"github.com/tknock/tknock/totpseq"
)

// Defaults and limits of the configuration file that no library has
// (deploy/tknockd.toml documents every key). The tracker's settings take
// listener's defaults and limits, the firewall's nft's, enrollments
// totpseq's.
const (
	defaultOpenFor  = 30 * time.Second
	minOpenFor      = time.Second // up to nft.MaxTTL
	minTimeout      = 10 * time.Millisecond
	defaultUsersDir = "users"
	maxConfigSize   = 1 << 20
)

// fileConfig is the configuration file as decoded, before validation. Keys
// that may be left out and whose zero value is a valid setting are pointers,
// so "not set" and "set to zero" differ.
type fileConfig struct {
	Realm          string              `toml:"realm"`
	UsersDir       string              `toml:"users_dir"`
	Interfaces     []string            `toml:"interfaces"`
	Skew           *int                `toml:"skew"`
	OpenFor        *string             `toml:"open_for"`
	GapMax         *string             `toml:"gap_max"`
	SeqTimeout     *string             `toml:"seq_timeout"`
	StateCapacity  *int                `toml:"state_capacity"`
	ReplayCapacity *int                `toml:"replay_capacity"`
	ReplayPerUser  *int                `toml:"replay_per_user"`
	StateDir       string              `toml:"state_dir"`
	MemoryLimit    *string             `toml:"memory_limit"`
	Prefilter      *string             `toml:"prefilter"`
	Enroll         fileEnroll          `toml:"enroll"`
	Services       map[string][]string `toml:"services"`
	Firewall       fileFirewall        `toml:"firewall"`
	Log            fileLog             `toml:"log"`
	Metrics        fileMetrics         `toml:"metrics"`
}

type fileEnroll struct {
	Host     string   `toml:"host"`
	Services []string `toml:"services"`
	Period   *int     `toml:"period"`
	Length   *int     `toml:"length"`
	Range    string   `toml:"range"`
	Proto    string   `toml:"proto"`
	Exclude  []int    `toml:"exclude"`
	V6Prefix *int     `toml:"v6prefix"`
	STUN     []string `toml:"stun"`
}

type fileFirewall struct {
	Mode       string        `toml:"mode"`
	Table      string        `toml:"table"`
	DropKnocks *bool         `toml:"drop_knocks"`
	Priority   *int          `toml:"priority"`
	External   *fileExternal `toml:"external"`

	ProtectLoopback *bool `toml:"protect_loopback"`
}

type fileExternal struct {
	Family string `toml:"family"`
	Table  string `toml:"table"`
	Set4   string `toml:"set4"`
	Set6   string `toml:"set6"`
}

type fileLog struct {
	Level  string `toml:"level"`
	Format string `toml:"format"`
}

type fileMetrics struct {
	Listen      string  `toml:"listen"`
	SocketGroup string  `toml:"socket_group"`
	AllowRemote bool    `toml:"allow_remote"`
	Window      *string `toml:"window"`
	Debug       bool    `toml:"debug"`
}

// Config is a validated configuration: every field holds a usable value,
// defaults filled in. It is never modified after Load returns; a
// reload builds a new one.
type Config struct {
	Path       string   // the file it came from
	Realm      string   // realm of every enrollment
	UsersDir   string   // directory of NAME.uri enrollment files
	Interfaces []string // interface names; nil means all interfaces
	Skew       int      // windows accepted on each side of the current one
	OpenFor    time.Duration
	GapMax     time.Duration
	SeqTimeout time.Duration
	// StateCapacity and ReplayCapacity size the tracker's tables; 0 means
	// the tracker's default. Skew, GapMax and SeqTimeout hold the
	// tracker's defaults when the file leaves them out.
	StateCapacity  int
	ReplayCapacity int
	ReplayPerUser  int
	// StateDir is where the daemon keeps the replay record across
	// restarts (an absolute path); "" means in memory only.
	StateDir string
	// MemoryLimit is the memory the daemon may use, in bytes: it refuses
	// a configuration whose estimate exceeds it, and gives it to the Go
	// runtime as its soft limit (internal/daemon, EstimateMemory). 0 means
	// not set: the daemon derives its limit from the estimate.
	MemoryLimit int64
	// Prefilter is "auto" (the eBPF prefilter when the kernel takes it,
	// else the classic filter), "on" (the prefilter or no start) or "off".
	Prefilter     string
	Enroll        EnrollDefaults
	Services      map[string]nft.Service // by service name
	Firewall      FirewallConfig
	LogLevel      zerolog.Level
	LogFormat     string // "auto", "json" or "console"
	MetricsListen string // host:port, or unix:/path; "" means no metrics endpoint
	Metrics       MetricsConfig
}

// EnrollDefaults are the parameters of new enrollments (tknockd enroll).
type EnrollDefaults struct {
	Host   string         // what clients knock at
	STUN   []string       // STUN servers for clients behind NAT (the URI's stun parameter); nil: none
	Params totpseq.Params // everything but the secret; Realm is the config's realm
}

// FirewallConfig is the [firewall] section.
type FirewallConfig struct {
	Mode       string // "table" or "external"
	Table      string // own-table mode: the table's name; "" means nft.DefaultTable
	DropKnocks bool
	Priority   int32             // own-table mode: 0 means nft's default
	External   *nft.ExternalSets // external mode only

	ProtectLoopback bool // own-table mode: loopback needs a grant too
}

// AllInterfaces reports whether the daemon listens on every interface.
func (c *Config) AllInterfaces() bool { return len(c.Interfaces) == 0 }

// ServiceNames returns the names of the configured services, sorted.
func (c *Config) ServiceNames() []string { return slices.Sorted(maps.Keys(c.Services)) }

// Protected returns the union of every service's endpoints.
func (c *Config) Protected() []nft.Endpoint {
	var eps []nft.Endpoint
	for _, name := range c.ServiceNames() {
		eps = append(eps, c.Services[name].Endpoints...)
	}
	return eps
}

// fieldError is a problem with one field of the configuration file.
type fieldError struct {
	file  string
	line  int // 0 when unknown
	field string
	msg   string
}

// Error says what is wrong and where. A value quoted back never shows an
// enrollment URI's secret (a URI pasted into the file by mistake).
func (e *fieldError) Error() string { return totpseq.Redact(e.error()) }

func (e *fieldError) error() string {
	var b strings.Builder
	b.WriteString(e.file + ": ")
	if e.line > 0 {
		b.WriteString("line " + strconv.Itoa(e.line) + ": ")
	}
	if e.field != "" {
		b.WriteString("field " + e.field + ": ")
	}
	b.WriteString(e.msg)
	return b.String()
}

// Load reads, decodes and validates the configuration file at path.
// The error lists every problem found, one per line, each naming the file,
// the line where known, the field and the problem:
//
//	/etc/tknock/tknockd.toml: line 7: field open_for: "soon" is not a duration: ...
func Load(path string) (*Config, error) {
	data, err := readConfigFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

func readConfigFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	if len(data) > maxConfigSize {
		return nil, fmt.Errorf("config: %s: larger than %d bytes: not a configuration file", path, maxConfigSize)
	}
	return data, nil
}

// Parse decodes and validates a configuration file's content; path
// is used in errors and to resolve a relative users_dir.
func Parse(path string, data []byte) (*Config, error) {
	var fc fileConfig
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(&fc); err != nil {
		return nil, decodeError(path, err)
	}
	v := validator{file: path, lines: keyLines(data)}
	c := v.validate(&fc)
	if err := v.err(); err != nil {
		return nil, err
	}
	return c, nil
}

// decodeError turns go-toml's errors into "FILE: line N: field KEY: problem".
func decodeError(path string, err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		errs := make([]error, len(strict.Errors))
		for i := range strict.Errors {
			e := &strict.Errors[i]
			line, _ := e.Position()
			errs[i] = &fieldError{file: path, line: line, field: strings.Join(e.Key(), "."),
				msg: "unknown field (a typo? every key is listed in deploy/tknockd.toml)"}
		}
		return errors.Join(errs...)
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, _ := de.Position()
		msg := strings.TrimPrefix(de.Error(), "toml: ")
		if m := typeMismatchRE.FindStringSubmatch(msg); m != nil {
			msg = "got a TOML " + m[1] + ", want " + tomlType(m[2])
		}
		return &fieldError{file: path, line: line, field: strings.Join(de.Key(), "."), msg: msg}
	}
	return fmt.Errorf("%s: %s", path, totpseq.Redact(err.Error()))
}

var typeMismatchRE = regexp.MustCompile(`^cannot decode TOML (\S+) into (?:.* of type )?(\S+)$`)

// tomlType says in TOML words what a Go type of fileConfig wants.
func tomlType(goType string) string {
	switch goType {
	case "string", "*string":
		return "a string (in double quotes)"
	case "int", "*int":
		return "an integer"
	case "bool":
		return "true or false"
	case "[]string":
		return "a list of strings, as in [\"a\", \"b\"]"
	case "[]int":
		return "a list of integers, as in [1, 2]"
	}
	if strings.HasPrefix(goType, "map[") || strings.HasPrefix(goType, "config.") || strings.HasPrefix(goType, "*config.") {
		return "a table"
	}
	return goType
}

// keyLines maps every dotted key of a TOML document ("firewall.mode") to
// the line it is on, so that validation errors can point at it. A
// document that does not parse gives what was read before the error.
func keyLines(data []byte) map[string]int {
	lines := make(map[string]int)
	var p unstable.Parser
	p.Reset(data)
	var table []string
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			table = table[:0]
			it := e.Key()
			var first *unstable.Node
			for it.Next() {
				if first == nil {
					first = it.Node()
				}
				table = append(table, string(it.Node().Data))
			}
			if first != nil {
				lines[strings.Join(table, ".")] = p.Shape(first.Raw).Start.Line
			}
		case unstable.KeyValue:
			key := slices.Clone(table)
			it := e.Key()
			var first *unstable.Node
			for it.Next() {
				if first == nil {
					first = it.Node()
				}
				key = append(key, string(it.Node().Data))
			}
			if first != nil {
				lines[strings.Join(key, ".")] = p.Shape(first.Raw).Start.Line
			}
		}
	}
	return lines
}

// validator collects every problem of a configuration file.
type validator struct {
	file  string
	lines map[string]int
	errs  []error // of *fieldError
}

func (v *validator) addf(field, format string, args ...any) {
	v.errs = append(v.errs, &fieldError{file: v.file, line: v.lines[field], field: field, msg: fmt.Sprintf(format, args...)})
}

// has reports whether a problem with field is recorded already.
func (v *validator) has(field string) bool {
	return slices.ContainsFunc(v.errs, func(e error) bool { return e.(*fieldError).field == field })
}

// trackerKey maps the fields of listener.Config to the keys of the file.
var trackerKey = map[string]string{
	"Skew": "skew", "GapMax": "gap_max", "SeqTimeout": "seq_timeout",
	"Capacity": "state_capacity", "ReplayCapacity": "replay_capacity", "ReplayPerUser": "replay_per_user",
}

// nftKey maps the fields of nft.Config to the keys of the file.
var nftKey = map[string]string{
	"Table": "firewall.table", "Priority": "firewall.priority", "Protected": "services",
	"External": "firewall.external", "External.Family": "firewall.external.family",
	"External.Table": "firewall.external.table", "External.Set4": "firewall.external.set4",
	"External.Set6": "firewall.external.set6",
}

// library records the problems a library's validator found, each under
// the key of the file it comes from, unless that key has a problem
// already (a value that did not parse is not reported twice).
func (v *validator) library(err error) {
	if err == nil {
		return
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, err := range errs {
		var field, msg string
		var te *listener.ConfigError
		var ne *nft.ConfigError
		var pe *totpseq.ParamError
		switch {
		case errors.As(err, &te):
			field, msg = trackerKey[te.Field], te.Value+": "+te.Err.Error()
			if _, set := v.lines[field]; !set && te.Field == "SeqTimeout" {
				// The default seq_timeout is shorter than the gap_max set.
				field, msg = "gap_max", "longer than seq_timeout ("+te.Value+", the default)"
			}
		case errors.As(err, &ne):
			field, msg = nftKey[ne.Field], ne.Err.Error()
		case errors.As(err, &pe):
			field, msg = enrollParam[pe.Param], pe.Err.Error()
			if pe.Value != "" {
				msg = pe.Value + ": " + msg
			}
		default:
			field, msg = "", err.Error()
		}
		if field == "" || !v.has(field) {
			v.addf(field, "%s", msg)
		}
	}
}

// err returns every problem, in the order of the lines of the file.
func (v *validator) err() error {
	slices.SortStableFunc(v.errs, func(a, b error) int {
		return cmp.Compare(a.(*fieldError).line, b.(*fieldError).line)
	})
	return errors.Join(v.errs...)
}

var ifnameRE = regexp.MustCompile(`^[A-Za-z0-9_.:@-]{1,15}$`)

func (v *validator) validate(fc *fileConfig) *Config {
	c := &Config{Path: v.file}

	c.Realm = fc.Realm
	if _, set := v.lines["realm"]; !set {
		// PROTOCOL.md section 1: the realm defaults to the server's host name.
		if h, err := os.Hostname(); err == nil {
			c.Realm = h
		}
	}

	c.UsersDir = cmp.Or(fc.UsersDir, defaultUsersDir)
	if !filepath.IsAbs(c.UsersDir) {
		c.UsersDir = filepath.Join(filepath.Dir(v.file), c.UsersDir)
	}

	c.StateDir = fc.StateDir
	if c.StateDir != "" && !filepath.IsAbs(c.StateDir) {
		v.addf("state_dir", "%q: want an absolute path (the unit's StateDirectory=, /var/lib/tknock)", c.StateDir)
	}

	c.MemoryLimit = v.size("memory_limit", fc.MemoryLimit)
	v.interfaces(c, fc.Interfaces)
	v.timing(c, fc)
	v.services(c, fc.Services)
	v.enroll(c, &fc.Enroll)
	v.firewall(c, &fc.Firewall)
	if len(c.Services) > 0 {
		v.library(c.NFT(nil).Validate())
	}

	switch fc.Log.Level {
	case "":
		c.LogLevel = zerolog.InfoLevel
	case "debug", "info", "warn", "error":
		c.LogLevel, _ = zerolog.ParseLevel(fc.Log.Level)
	default:
		v.addf("log.level", "%q: want debug, info, warn or error", fc.Log.Level)
	}
	switch fc.Log.Format {
	case "":
		c.LogFormat = "auto"
	case "auto", "json", "console":
		c.LogFormat = fc.Log.Format
	default:
		v.addf("log.format", "%q: want json, console or auto (console on a terminal, else json)", fc.Log.Format)
	}

	v.metrics(c, &fc.Metrics)
	return c
}

// Units of a size in the file (memory_limit): binary multiples, spelt as
// systemd and the kernel print them. A bare number is bytes.
var sizeUnits = []struct {
	suffix string
	n      int64
}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}}

// maxSize is the largest size the file takes (memory_limit): 1 TiB.
const maxSize = 1 << 40

// ParseSize parses a size of the configuration file: digits with one of
// the units KiB, MiB or GiB, or digits alone for bytes, from 1 byte to
// 1 TiB. Any other spelling is an error (256M and 256MB would be
// ambiguous between powers of 1000 and 1024).
func ParseSize(s string) (int64, error) {
	digits, unit := s, int64(1)
	for _, u := range sizeUnits {
		if d, ok := strings.CutSuffix(s, u.suffix); ok {
			digits, unit = d, u.n
			break
		}
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || digits == "" || digits[0] == '+' {
		return 0, fmt.Errorf("%q is not a size: want a number of bytes, or with a unit KiB, MiB or GiB, as in \"256MiB\"", s)
	}
	if n == 0 {
		return 0, fmt.Errorf("%s: leave it out for the default", s)
	}
	if n > maxSize/uint64(unit) {
		return 0, fmt.Errorf("%s: want at most %s", s, FormatSize(maxSize))
	}
	return int64(n) * unit, nil
}

// FormatSize writes n bytes as the file would: with the largest unit that
// divides it, or bytes.
func FormatSize(n int64) string {
	for _, u := range sizeUnits {
		if n != 0 && n%u.n == 0 {
			return strconv.FormatInt(n/u.n, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// size returns the size of a key that may be left out (0).
func (v *validator) size(field string, p *string) int64 {
	if p == nil {
		return 0
	}
	n, err := ParseSize(*p)
	if err != nil {
		v.addf(field, "%v", err)
		return 0
	}
	return n
}

func checkListen(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want host:port, as in 127.0.0.1:9121")
	}
	if host != "" && host != "localhost" {
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Errorf("host %q: want an IP address or localhost", host)
		}
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return fmt.Errorf("port %q: want 1..65535", port)
	}
	return nil
}

func (v *validator) interfaces(c *Config, ifs []string) {
	if ifs == nil {
		return // all interfaces
	}
	if len(ifs) == 0 {
		v.addf("interfaces", "empty list: name interfaces, or [\"any\"] for all")
		return
	}
	for i, name := range ifs {
		switch {
		case name == "any":
			if len(ifs) > 1 {
				v.addf("interfaces", "\"any\" means every interface: list it alone")
				return
			}
		case !ifnameRE.MatchString(name):
			v.addf("interfaces", "%q is not an interface name", name)
		case slices.Contains(ifs[:i], name):
			v.addf("interfaces", "%q listed twice", name)
		default:
			c.Interfaces = append(c.Interfaces, name)
		}
	}
}

func (v *validator) timing(c *Config, fc *fileConfig) {
	d := listener.DefaultConfig()
	c.Skew = d.Skew
	if fc.Skew != nil {
		c.Skew = *fc.Skew
	}
	// Durations are strings with a unit: a bare number would be ambiguous.
	// hi 0: the library checks the upper limit.
	dur := func(field string, p *string, def, lo, hi time.Duration) time.Duration {
		if p == nil {
			return def
		}
		d, err := time.ParseDuration(*p)
		if err != nil {
			v.addf(field, "%q is not a duration: want a number with a unit, as in \"30s\" or \"1m30s\"", *p)
			return def
		}
		if d < lo || hi > 0 && d > hi {
			if hi > 0 {
				v.addf(field, "%v: want %v to %v", d, lo, hi)
			} else {
				v.addf(field, "%v: want at least %v", d, lo)
			}
			return def
		}
		return d
	}
	c.OpenFor = dur("open_for", fc.OpenFor, defaultOpenFor, minOpenFor, nft.MaxTTL)
	c.GapMax = dur("gap_max", fc.GapMax, d.GapMax, minTimeout, 0)
	c.SeqTimeout = dur("seq_timeout", fc.SeqTimeout, d.SeqTimeout, minTimeout, 0)
	// 0 is the tracker's "default": the file says that by leaving the key out.
	capacity := func(field string, p *int) int {
		if p == nil {
			return 0
		}
		if *p == 0 {
			v.addf(field, "0: leave it out for the default")
		}
		return *p
	}
	c.StateCapacity = capacity("state_capacity", fc.StateCapacity)
	c.ReplayCapacity = capacity("replay_capacity", fc.ReplayCapacity)
	c.ReplayPerUser = capacity("replay_per_user", fc.ReplayPerUser)
	v.library(c.Tracker().Validate())
	c.Prefilter = "auto"
	if fc.Prefilter != nil {
		switch *fc.Prefilter {
		case "auto", "on", "off":
			c.Prefilter = *fc.Prefilter
		default:
			v.addf("prefilter", "%q: want \"auto\", \"on\" or \"off\"", *fc.Prefilter)
		}
	}
}

func (v *validator) services(c *Config, m map[string][]string) {
	c.Services = make(map[string]nft.Service, len(m))
	if len(m) == 0 {
		v.addf("services", "no services: map at least one, as in ssh = [\"tcp/22\"]")
		return
	}
	for _, name := range slices.Sorted(maps.Keys(m)) {
		field := "services." + name
		if !totpseq.ValidService(name) {
			v.addf(field, "bad service name: want [a-z0-9][a-z0-9._-]{0,62}")
			continue
		}
		if len(m[name]) == 0 {
			v.addf(field, "no endpoints: want a list such as [\"tcp/22\"]")
			continue
		}
		svc := nft.Service{Name: name}
		for _, s := range m[name] {
			ep, err := nft.ParseEndpoint(s)
			if err != nil {
				v.addf(field, "%v", err)
				continue
			}
			if slices.Contains(svc.Endpoints, ep) {
				v.addf(field, "%v listed twice", ep)
				continue
			}
			svc.Endpoints = append(svc.Endpoints, ep)
		}
		c.Services[name] = svc
	}
}

// enrollParam maps totpseq's URI parameter names to the keys of [enroll].
var enrollParam = map[string]string{
	"services": "enroll.services", "period": "enroll.period", "len": "enroll.length",
	"range": "enroll.range", "exclude": "enroll.exclude", "proto": "enroll.proto",
	"v6prefix": "enroll.v6prefix", "host": "enroll.host", "stun": "enroll.stun",
	"realm": "realm",
}

// EnrollLength is the default length of new enrollments: the protocol's
// default (4) over its default range gives 40.8 bits, under
// totpseq.MinBits; 5 gives 53.3.
const EnrollLength = 5

func (v *validator) enroll(c *Config, fe *fileEnroll) {
	p := totpseq.Defaults()
	p.Length = EnrollLength
	p.Realm = c.Realm
	c.Enroll.Host = cmp.Or(fe.Host, c.Realm)
	if fe.Services != nil {
		p.Services = fe.Services
	}
	for _, s := range p.Services {
		if _, known := c.Services[s]; !known && totpseq.ValidService(s) {
			if fe.Services == nil {
				v.addf("enroll.services", "not set, and the default %q is not in [services]: name the services new users get", s)
			} else {
				v.addf("enroll.services", "%q is not in [services]", s)
			}
		}
	}
	if fe.Period != nil {
		p.Period = *fe.Period
	}
	if fe.Length != nil {
		p.Length = *fe.Length
	}
	if fe.V6Prefix != nil {
		p.V6Prefix = *fe.V6Prefix
	}
	if fe.Range != "" {
		r, err := totpseq.ParseRange(fe.Range)
		if err != nil {
			v.addf("enroll.range", "%v", err)
		}
		p.Range = r
	}
	if fe.Proto != "" {
		proto, err := inet.ParseProto(fe.Proto)
		if err != nil {
			v.addf("enroll.proto", "%v", err)
		}
		p.Proto = proto
	}
	for _, x := range fe.Exclude {
		if x < 1 || x > 65535 {
			v.addf("enroll.exclude", "%d is not a port (1..65535)", x)
			continue
		}
		p.Exclude = append(p.Exclude, uint16(x))
	}
	slices.Sort(p.Exclude) // totpseq refuses a port listed twice
	c.Enroll.Params = p
	e := totpseq.Enrollment{Name: "check", Host: c.Enroll.Host, STUN: fe.STUN, Params: p}
	e.Secret = make(totpseq.Secret, totpseq.DefaultSecretSize)
	if len(fe.STUN) > 0 {
		// Canonical, as the URI will carry them.
		c.Enroll.STUN, _ = totpseq.ParseSTUNList(fe.STUN)
	}
	if err := e.Validate(); err != nil {
		v.library(err)
		return
	}
	v.library(p.CheckStrength())
}

func (v *validator) firewall(c *Config, ff *fileFirewall) {
	fw := &c.Firewall
	fw.Mode = cmp.Or(ff.Mode, "table")
	// Knock ports look filtered by default in table mode (nil: not set).
	fw.DropKnocks = ff.DropKnocks == nil || *ff.DropKnocks
	// Names, families and the priority's lower limit are nft's to check
	// (nft.Config.Validate, called by validate).
	switch fw.Mode {
	case "table":
		fw.Table = ff.Table
		if ff.Priority != nil {
			p := *ff.Priority
			switch {
			case p == 0:
				// nft reads 0 as its default.
				v.addf("firewall.priority", "0: leave it out for the default (%d), or take 1 or -1", nft.DefaultPriority)
			case p > 1<<20:
				v.addf("firewall.priority", "%d: want at most %d", p, 1<<20)
			case p < math.MinInt32:
				v.addf("firewall.priority", "%d: not a priority", p)
			default:
				fw.Priority = int32(p)
			}
		}
		if ff.External != nil {
			v.addf("firewall.external", "only with mode = \"external\"")
		}
		fw.ProtectLoopback = ff.ProtectLoopback != nil && *ff.ProtectLoopback
	case "external":
		if ff.Table != "" {
			v.addf("firewall.table", "not with mode = \"external\": name the administrator's table in [firewall.external]")
		}
		if ff.Priority != nil {
			v.addf("firewall.priority", "not with mode = \"external\": the administrator's chain decides")
		}
		if ff.ProtectLoopback != nil {
			v.addf("firewall.protect_loopback", "not with mode = \"external\": the administrator's chain decides")
		}
		fw.DropKnocks = false
		if ff.DropKnocks != nil && *ff.DropKnocks {
			v.addf("firewall.drop_knocks", "not with mode = \"external\": drop knock ports in your own ruleset")
		}
		ext := ff.External
		if ext == nil {
			v.addf("firewall.external", "missing: mode = \"external\" needs family, table, set4 and/or set6")
			return
		}
		fw.External = &nft.ExternalSets{Family: ext.Family, Table: ext.Table, Set4: ext.Set4, Set6: ext.Set6}
	default:
		v.addf("firewall.mode", "%q: want \"table\" (tknockd owns a table) or \"external\" (sets in your table)", fw.Mode)
	}
}
