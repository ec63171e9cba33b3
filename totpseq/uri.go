package totpseq

import (
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"github.com/tknock/tknock/inet"
)

// Issuer is the otpauth issuer of every tknock enrollment.
const Issuer = "tknock"

// Secret is a shared key. It prints as "[redacted]" with every fmt verb, so
// a Params or Enrollment that reaches a log line never shows it.
type Secret []byte

// String returns "[redacted]".
func (Secret) String() string { return "[redacted]" }

// GoString returns "[redacted]".
func (Secret) GoString() string { return "[redacted]" }

// MarshalText returns "[redacted]", so JSON and text encoders never write
// the secret either (Enrollment.URI is how an enrollment is serialized).
func (Secret) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// Enrollment is one user's enrollment: the parameters, the user's name and
// the host the client knocks at.
type Enrollment struct {
	Name string // account name, a valid user name (ValidName)
	Host string // DNS name or address the client knocks at; may be empty in a server's users file
	// STUN lists the STUN servers (HOST:PORT, canonical as ParseSTUNServer
	// returns them) a client behind NAT asks for the address the server
	// sees. A hint for the client only: no sequence depends on it.
	STUN []string
	// Check lists, per service, the port a client connects to after a
	// knock to confirm that the door opened; a service may have none. A
	// hint for the client only: no sequence depends on it.
	Check []CheckPort
	Params
}

// ValidName reports whether s is a valid user name:
// [A-Za-z0-9][A-Za-z0-9._@-]{0,63}. A user name is used as a file name
// (users/NAME.uri), so it has no slash and does not start with a dot.
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == '-' || c == '@'):
		default:
			return false
		}
	}
	return true
}

// Validate checks the name, the host and the parameters.
func (e *Enrollment) Validate() error {
	if !ValidName(e.Name) {
		return fmt.Errorf("name %q: want [A-Za-z0-9][A-Za-z0-9._@-]{0,63}", e.Name)
	}
	// The parameters first: a host often defaults to the realm, and the
	// realm's error says more.
	if err := e.Params.Validate(); err != nil {
		return err
	}
	if err := validHost(e.Host); err != nil {
		return &ParamError{Param: "host", Value: strconv.Quote(e.Host), Err: err}
	}
	if len(e.STUN) > 0 {
		if _, err := ParseSTUNList(e.STUN); err != nil {
			return err
		}
	}
	return validChecks(e.Check, e.Services)
}

// validHost checks an enrollment's host: empty, or a DNS name or an address
// in printable ASCII (letters, digits and . - _ : % [ ]), at most 253 bytes,
// not starting with '-'. The host reaches ssh's command line (ProxyCommand
// %h) and the terminal, so control characters, spaces and a leading dash
// (an option to ssh) are refused; a name with other characters is written in
// its ASCII (xn--) form.
func validHost(h string) error {
	if len(h) > 253 {
		return fmt.Errorf("%d bytes, longer than 253", len(h))
	}
	if strings.HasPrefix(h, "-") {
		return errors.New("starts with '-'")
	}
	for i := 0; i < len(h); i++ {
		switch c := h[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '-', c == '_', c == ':', c == '%', c == '[', c == ']':
		case c < 0x20 || c == 0x7f:
			return fmt.Errorf("control character at byte %d", i)
		case c >= 0x80:
			return errors.New("not ASCII: write an international name in its xn-- form")
		default:
			return fmt.Errorf("%q at byte %d: not a host name or address", c, i)
		}
	}
	return nil
}

// NewEnrollment makes an enrollment for user name with a fresh secret of
// DefaultSecretSize bytes read from rand (crypto/rand when rand is nil),
// through pquerna/otp's key generation. p supplies every other parameter.
func NewEnrollment(name, host string, p Params, rand io.Reader) (*Enrollment, error) {
	e := &Enrollment{Name: name, Host: host, Params: p}
	e.Secret = make(Secret, MinSecretSize) // placeholder so Validate checks the rest
	if err := e.Validate(); err != nil {
		return nil, err
	}
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer:      Issuer,
		AccountName: name,
		Period:      uint(p.Period),
		SecretSize:  DefaultSecretSize,
		Rand:        rand,
	})
	if err != nil {
		return nil, fmt.Errorf("generate secret: %w", err)
	}
	secret, err := b32.DecodeString(key.Secret())
	if err != nil {
		return nil, fmt.Errorf("generate secret: %w", err)
	}
	e.Secret = secret
	return e, nil
}

// URI returns the enrollment URI of PROTOCOL.md section 5. The otpauth part
// comes from pquerna/otp; the knock parameters follow in a fixed order. e
// must be valid.
func (e *Enrollment) URI() string {
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer:      Issuer,
		AccountName: e.Name,
		Period:      uint(e.Period),
		Secret:      e.Secret,
		Digits:      otp.DigitsSix,
		Algorithm:   otp.AlgorithmSHA1,
	})
	if err != nil {
		// Only a missing issuer or account name fails, and neither is.
		panic("totpseq: URI of an invalid enrollment: " + err.Error())
	}
	var b strings.Builder
	b.WriteString(key.URL())
	add := func(k, v string) {
		b.WriteString("&" + k + "=" + escape(v))
	}
	add("tknock", strconv.Itoa(Version))
	if e.Host != "" {
		add("host", e.Host)
	}
	add("realm", e.Realm)
	add("services", strings.Join(e.Services, ","))
	add("len", strconv.Itoa(e.Length))
	add("range", e.Range.String())
	add("proto", e.Proto.String())
	if len(e.Exclude) > 0 {
		ports := make([]string, len(e.Exclude))
		for i, x := range e.Exclude {
			ports[i] = strconv.Itoa(int(x))
		}
		add("exclude", strings.Join(ports, ","))
	}
	add("v6prefix", strconv.Itoa(e.V6Prefix))
	if len(e.STUN) > 0 {
		// A colon is legal in a query: HOST:PORT stays readable.
		b.WriteString("&stun=" + strings.ReplaceAll(escape(strings.Join(e.STUN, ",")), "%3A", ":"))
	}
	if len(e.Check) > 0 {
		checks := make([]string, len(e.Check))
		for i, c := range e.Check {
			checks[i] = c.String()
		}
		// Service names, tcp/udp and digits: nothing to escape.
		b.WriteString("&check=" + strings.Join(checks, ","))
	}
	return b.String()
}

// escape query-escapes v, keeping commas readable and spaces as %20.
func escape(v string) string {
	v = url.QueryEscape(v)
	v = strings.ReplaceAll(v, "%2C", ",")
	return strings.ReplaceAll(v, "+", "%20")
}

// maxURI bounds an enrollment URI; a real one is a few hundred bytes.
const maxURI = 16 << 10

// ParseURI parses an enrollment URI. Surrounding whitespace is trimmed and
// unknown parameters are ignored; a missing parameter takes the default of
// PROTOCOL.md section 1 (realm defaults to host); a parameter that is
// present but invalid, or given twice, is an error that names it.
func ParseURI(s string) (*Enrollment, error) {
	e, err := parseURI(s)
	if err != nil {
		return nil, scrub(err, rawSecret(s))
	}
	return e, nil
}

func parseURI(s string) (*Enrollment, error) {
	s = strings.TrimSpace(s)
	if len(s) > maxURI {
		return nil, fmt.Errorf("enrollment URI: %d bytes, longer than %d", len(s), maxURI)
	}
	key, err := otp.NewKeyFromURL(s)
	if err != nil {
		return nil, fmt.Errorf("enrollment URI: %w", redactURL(err))
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("enrollment URI: %w", redactURL(err))
	}
	if u.Scheme != "otpauth" {
		return nil, fmt.Errorf("enrollment URI: scheme %q: want otpauth", u.Scheme)
	}
	if key.Type() != "totp" {
		return nil, fmt.Errorf("enrollment URI: type %q: want otpauth://totp/", key.Type())
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("enrollment URI: query: %w", err)
	}
	get := func(name string) (string, bool, error) {
		vs, ok := q[name]
		switch {
		case !ok:
			return "", false, nil
		case len(vs) > 1:
			return "", true, paramErr(name, "", "given %d times", len(vs))
		}
		return vs[0], true, nil
	}

	version, ok, err := get("tknock")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, paramErr("tknock", "", "missing: not a tknock enrollment (an ordinary OTP key?)")
	}
	if version != strconv.Itoa(Version) {
		return nil, paramErr("tknock", strconv.Quote(version), "unsupported protocol version: want %d", Version)
	}

	e := &Enrollment{Name: key.AccountName(), Params: Defaults()}
	if issuer, _, err := get("issuer"); err != nil {
		return nil, err
	} else if issuer != "" && issuer != Issuer {
		return nil, paramErr("issuer", strconv.Quote(issuer), "want %s", Issuer)
	}

	secret, ok, err := get("secret")
	if err != nil {
		return nil, err
	}
	if !ok || secret == "" {
		return nil, paramErr("secret", "", "missing")
	}
	e.Secret, err = b32.DecodeString(strings.TrimRight(strings.ToUpper(secret), "="))
	if err != nil {
		return nil, paramErr("secret", "", "not base32 (RFC 4648, A-Z and 2-7)")
	}

	var first error
	param := func(name string, parse func(string) error) {
		if first != nil {
			return
		}
		v, ok, err := get(name)
		if err != nil {
			first = err
			return
		}
		if !ok {
			return
		}
		if err := parse(v); err != nil {
			var pe *ParamError
			if errors.As(err, &pe) {
				first = err
				return
			}
			first = &ParamError{Param: name, Value: strconv.Quote(v), Err: err}
		}
	}
	param("host", func(v string) error { e.Host = v; return nil })
	param("realm", func(v string) error { e.Realm = v; return nil })
	param("services", func(v string) error {
		e.Services = strings.Split(v, ",")
		for _, s := range e.Services {
			if !ValidService(s) {
				return paramErr("services", strconv.Quote(s), "bad service name: want [a-z0-9][a-z0-9._-]{0,62}")
			}
		}
		return nil
	})
	param("period", func(v string) (err error) { e.Period, err = atoi(v); return err })
	param("len", func(v string) (err error) { e.Length, err = atoi(v); return err })
	param("range", func(v string) (err error) {
		e.Range, err = ParseRange(v)
		return err
	})
	param("proto", func(v string) (err error) { e.Proto, err = inet.ParseProto(v); return err })
	param("exclude", func(v string) error {
		if v == "" {
			return nil
		}
		for _, f := range strings.Split(v, ",") {
			x, err := parsePort(f)
			if err != nil {
				return err
			}
			e.Exclude = append(e.Exclude, x)
		}
		slices.Sort(e.Exclude)
		e.Exclude = slices.Compact(e.Exclude)
		return nil
	})
	param("v6prefix", func(v string) (err error) { e.V6Prefix, err = atoi(v); return err })
	param("stun", func(v string) (err error) { e.STUN, err = ParseSTUN(v); return err })
	param("check", func(v string) (err error) { e.Check, err = ParseCheck(v); return err })
	if first != nil {
		return nil, first
	}
	if _, ok := q["realm"]; !ok {
		if e.Host == "" {
			return nil, paramErr("realm", "", "missing, and no host to default it to")
		}
		e.Realm = e.Host
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return e, nil
}

// rawSecret returns the value of the URI's secret parameter as written, or
// "" when there is none: what scrub must keep out of an error.
func rawSecret(s string) string {
	i := strings.Index(s, "secret=")
	if i < 0 {
		return ""
	}
	v := s[i+len("secret="):]
	if j := strings.IndexAny(v, "&#"); j >= 0 {
		v = v[:j]
	}
	return v
}

// leakRun is the shortest run of a secret's characters that scrub treats as
// the secret showing: 8 base32 characters are 40 bits of it.
const leakRun = 8

// scrub returns err, or when its text shows leakRun or more consecutive
// characters of secret (compared without case), an error whose text has
// each such run replaced by "[redacted]". A typo that runs the secret into
// another parameter's value (a missing '&') would otherwise quote it.
func scrub(err error, secret string) error {
	msg := err.Error()
	if len(secret) < leakRun {
		return err
	}
	lower, sec := strings.ToLower(msg), strings.ToLower(secret)
	var b strings.Builder
	leaked := false
	for i := 0; i < len(msg); {
		n := 0
		for j := 0; j+leakRun <= len(sec); j++ {
			k := 0
			for i+k < len(lower) && j+k < len(sec) && lower[i+k] == sec[j+k] {
				k++
			}
			n = max(n, k)
		}
		if n >= leakRun {
			b.WriteString("[redacted]")
			i += n
			leaked = true
			continue
		}
		b.WriteByte(msg[i])
		i++
	}
	if !leaked {
		return err
	}
	return errors.New(b.String())
}

// secretParam matches the secret parameter of an enrollment URI and its
// value, in any case.
var secretParam = regexp.MustCompile(`(?i)secret=[^&#\s"']*`)

// Redact returns s with the value of every secret parameter ("secret=...")
// replaced by "[redacted]": for messages that quote text which may hold an
// enrollment URI (a configuration value where a URI was pasted, say).
func Redact(s string) string {
	return secretParam.ReplaceAllString(s, "secret=[redacted]")
}

// redactURL drops the URI that net/url quotes in its errors: the URI holds
// the secret, and the error reaches logs and terminals. What is left says
// what is wrong ("invalid control character in URL").
func redactURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func atoi(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || s[0] == '+' || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("not a decimal number")
	}
	return n, nil
}
