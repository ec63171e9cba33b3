package totpseq

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/tknock/tknock/inet"
)

func testEnrollment(t testing.TB) *Enrollment {
	t.Helper()
	p := Defaults()
	p.Realm = "ssh.example.com"
	p.Services = []string{"ssh", "web"}
	p.Exclude = []uint16{11211, 27017}
	e, err := NewEnrollment("alice", "ssh.example.com", p, bytes.NewReader(bytes.Repeat([]byte{7}, 64)))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestNewEnrollmentSecret(t *testing.T) {
	e, err := NewEnrollment("alice", "h", func() Params { p := Defaults(); p.Realm = "r"; return p }(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Secret) != DefaultSecretSize {
		t.Errorf("secret is %d bytes, want %d", len(e.Secret), DefaultSecretSize)
	}
	e2, _ := NewEnrollment("alice", "h", e.Params, nil)
	if bytes.Equal(e.Secret, e2.Secret) {
		t.Error("two enrollments got the same secret from crypto/rand")
	}
}

func TestURIRoundTrip(t *testing.T) {
	e := testEnrollment(t)
	uri := e.URI()
	if !strings.HasPrefix(uri, "otpauth://totp/tknock:alice?") {
		t.Errorf("URI() = %q, want prefix otpauth://totp/tknock:alice?", uri)
	}
	for _, want := range []string{"secret=", "issuer=tknock", "algorithm=SHA1", "digits=6", "period=30",
		"&tknock=1", "&host=ssh.example.com", "&realm=ssh.example.com", "&services=ssh,web",
		"&len=4", "&range=10000-32767", "&proto=tcp", "&exclude=11211,27017", "&v6prefix=128"} {
		if !strings.Contains(uri, want) {
			t.Errorf("URI() = %q, missing %q", uri, want)
		}
	}
	if strings.Contains(uri, "=") && strings.Contains(strings.SplitN(uri, "secret=", 2)[1], "=&") {
		t.Errorf("URI() has base32 padding: %q", uri)
	}
	got, err := ParseURI("  \n" + uri + "\n ")
	if err != nil {
		t.Fatalf("ParseURI(URI()) error: %v", err)
	}
	if diff := cmp.Diff(e, got); diff != "" {
		t.Errorf("ParseURI(URI()) mismatch (-want +got):\n%s", diff)
	}
	// Odd realms survive the trip.
	for _, realm := range []string{"a b&c=d,e", "ünïcode.example", "x?y#z%", strings.Repeat("r", 255)} {
		e.Realm = realm
		got, err := ParseURI(e.URI())
		if err != nil || got.Realm != realm {
			t.Errorf("realm %q: ParseURI(URI()) = %v, %v", realm, got, err)
		}
	}
}

func TestParseURISpecExample(t *testing.T) {
	const uri = "otpauth://totp/tknock:alice?secret=AEBAGBAFAYDQQCIKBMGA2DQPCAIREEYUCULBOGAZDINRYHI6D4QA&issuer=tknock&algorithm=SHA1&digits=6&period=30" +
		"&tknock=1&host=ssh.example.com&realm=ssh.example.com&services=ssh,web" +
		"&len=4&range=10000-32767&proto=tcp&exclude=27017,11211&v6prefix=128&future=ignored"
	e, err := ParseURI(uri)
	if err != nil {
		t.Fatal(err)
	}
	want := &Enrollment{Name: "alice", Host: "ssh.example.com", Params: Params{
		Secret: e.Secret, Realm: "ssh.example.com", Services: []string{"ssh", "web"}, Period: 30, Length: 4,
		Range: Range{10000, 32767}, Exclude: []uint16{11211, 27017}, Proto: inet.TCP, V6Prefix: 128,
	}}
	if diff := cmp.Diff(want, e); diff != "" {
		t.Errorf("ParseURI mismatch (-want +got):\n%s", diff)
	}
	if len(e.Secret) != 32 || e.Secret[0] != 1 {
		t.Errorf("secret decoded to %d bytes", len(e.Secret))
	}
}

func TestParseURIDefaults(t *testing.T) {
	e, err := ParseURI("otpauth://totp/tknock:bob?secret=AEBAGBAFAYDQQCIKBMGA2DQPCA&tknock=1&host=gw.example.net")
	if err != nil {
		t.Fatal(err)
	}
	want := Defaults()
	want.Secret = e.Secret
	want.Realm = "gw.example.net"
	if diff := cmp.Diff(want, e.Params); diff != "" {
		t.Errorf("defaults mismatch (-want +got):\n%s", diff)
	}
}

func TestParseURIErrors(t *testing.T) {
	const base = "otpauth://totp/tknock:alice?secret=AEBAGBAFAYDQQCIKBMGA2DQPCAIREEYUCULBOGAZDINRYHI6D4QA&issuer=tknock&tknock=1&host=h.example&realm=r"
	tests := []struct {
		uri  string
		want string // substring of the error
	}{
		{"", "scheme"},
		{"https://totp/tknock:alice?secret=AAAA&tknock=1", `scheme "https"`},
		{"otpauth://hotp/tknock:alice?secret=AEBAGBAFAYDQQCIKBMGA2DQPCA&tknock=1&realm=r", `type "hotp"`},
		{"otpauth://totp/x?secret=AEBAGBAFAYDQQCIKBMGA2DQPCA&realm=r", "parameter tknock: missing"},
		{base + "&tknock=2", "parameter tknock: given 2 times"},
		{strings.Replace(base, "tknock=1", "tknock=2", 1), `parameter tknock: "2": unsupported protocol version`},
		{strings.Replace(base, "secret=AEBAGBAFAYDQQCIKBMGA2DQPCAIREEYUCULBOGAZDINRYHI6D4QA&", "", 1), "parameter secret: missing"},
		{strings.Replace(base, "AEBAGBAFAYDQQCIKBMGA2DQPCAIREEYUCULBOGAZDINRYHI6D4QA", "AEBAGBAFAYDQQCIK", 1), "parameter secret: 10 bytes: want 16..64"},
		{strings.Replace(base, "AEBAGBAFAYDQQCIKBMGA2DQPCAIREEYUCULBOGAZDINRYHI6D4QA", "AEBAGBAF!YDQQCIK", 1), "parameter secret: not base32"},
		{base + "&range=9-8", `parameter range: "9-8": 9-8: lo must be < hi`},
		{base + "&range=0-100", `parameter range: "0-100": "0-100": lo:`},
		{base + "&range=10000-10050", "parameter range: 10000-10050: 51 usable ports"},
		{base + "&range=100-70000", "parameter range"},
		{base + "&len=1", "parameter len: 1: want 2..16"},
		{base + "&len=17", "parameter len: 17"},
		{base + "&len=four", `parameter len: "four": not a decimal number`},
		{base + "&period=4", "parameter period: 4"},
		{base + "&period=3601", "parameter period: 3601"},
		{base + "&services=ssh,Web", `parameter services: "Web": bad service name`},
		{base + "&services=ssh,", `parameter services: "": bad service name`},
		{base + "&services=ssh,ssh", "parameter services: ssh: listed twice"},
		{base + "&proto=icmp", `parameter proto: "icmp"`},
		{base + "&exclude=80", "parameter exclude: 80: port outside range"},
		{base + "&exclude=20000,x", `parameter exclude: "20000,x"`},
		{base + "&v6prefix=47", "parameter v6prefix: 47: want 48..128"},
		{base + "&v6prefix=129", "parameter v6prefix: 129"},
		{strings.Replace(base, "issuer=tknock", "issuer=evil", 1), `parameter issuer: "evil"`},
		{strings.Replace(base, "&realm=r", "", 1) + "&realm=", "parameter realm: 0 bytes"},
		{strings.Replace(strings.Replace(base, "&realm=r", "", 1), "&host=h.example", "", 1), "parameter realm: missing"},
		{strings.Replace(base, "host=h.example", "host=a/b", 1), `parameter host: "a/b"`},
		{strings.Replace(base, "tknock:alice", "tknock:../etc", 1), `name "../etc"`},
		{base + "&x=%zz", "query"},
		{strings.Replace(base, "host=h.example", "host=h%01x", 1), `parameter host: "h\x01x": control character at byte 1`},
		{strings.Replace(base, "host=h.example", "host=-oProxyCommand=x", 1), "parameter host: \"-oProxyCommand=x\": starts with '-'"},
		{strings.Replace(base, "host=h.example", "host=h%20x", 1), `parameter host: "h x": ' ' at byte 1`},
		{strings.Replace(base, "host=h.example", "host=%C3%A9.example", 1), "parameter host: \"\u00e9.example\": not ASCII"},
		{"otpauth://totp/" + strings.Repeat("a", 20000), "longer than"},
	}
	for _, tt := range tests {
		_, err := ParseURI(tt.uri)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseURI(%.90q) error = %v, want it to contain %q", tt.uri, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "AEBAGBAFAYDQQCIK") {
			t.Errorf("ParseURI(%.60q) error leaks the secret: %v", tt.uri, err)
		}
	}
}

// TestParseURIKeepsSecret drives every way a URI can be malformed around a
// known secret, some of which make net/url or a parameter's parser quote the
// text that holds it, and checks that no error shows 8 consecutive
// characters of the secret, in any case.
func TestParseURIKeepsSecret(t *testing.T) {
	const secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXQ"
	const base = "otpauth://totp/tknock:alice?secret=" + secret + "&issuer=tknock&tknock=1&host=h.example"
	uris := []string{
		base + "&x=%zz",
		"otpauth://totp/x\x01?secret=" + secret + "&tknock=1&host=h",
		"otp auth://totp/x?secret=" + secret + "&tknock=1&host=h",
		"otpauth://[::1/x?secret=" + secret + "&tknock=1&host=h",
		"otpauth://totp/x?secret=" + secret + "\x7f&tknock=1",
		strings.Replace(base, "&issuer", "&len=4", 1) + "&range=10000-32767secret=" + secret,
		"otpauth://totp/tknock:alice?host=" + secret + "\x01&secret=" + secret + "&tknock=1",
		"otpauth://totp/tknock:alice?realm=r&services=ssh," + secret + "&secret=" + secret + "&tknock=1",
		"otpauth://totp/tknock:" + secret + "/x?secret=" + secret + "&tknock=1&realm=r",
		base + "&exclude=" + secret,
		base + "&proto=" + secret + "&realm=r",
		"https://totp/tknock:alice?secret=" + secret,
	}
	for _, u := range uris {
		_, err := ParseURI(u)
		if err == nil {
			t.Errorf("ParseURI(<%d bytes>) = nil error, want one", len(u))
			continue
		}
		if run := leakedRun(err.Error(), secret); run != "" {
			t.Errorf("ParseURI error shows %q of the secret: %v", run, err)
		}
	}
}

// leakedRun returns the first 8 consecutive characters of secret that msg
// contains, compared without case, or "".
func leakedRun(msg, secret string) string {
	msg, secret = strings.ToLower(msg), strings.ToLower(secret)
	for i := 0; i+8 <= len(secret); i++ {
		if strings.Contains(msg, secret[i:i+8]) {
			return secret[i : i+8]
		}
	}
	return ""
}

func TestParamErrorNamesParameter(t *testing.T) {
	_, err := ParseURI("otpauth://totp/tknock:a?secret=AEBAGBAFAYDQQCIKBMGA2DQPCA&tknock=1&realm=r&len=1")
	var pe *ParamError
	if !errors.As(err, &pe) || pe.Param != "len" {
		t.Errorf("error %v: want a *ParamError for len", err)
	}
}

func TestSecretRedacted(t *testing.T) {
	e := testEnrollment(t)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
		if s := fmt.Sprintf(verb, e); strings.Contains(s, b32.EncodeToString(e.Secret)) ||
			strings.Contains(s, fmt.Sprintf("%x", []byte(e.Secret))) || strings.Contains(s, "7 7 7") {
			t.Errorf("Sprintf(%s, enrollment) shows the secret: %s", verb, s)
		}
	}
}

func FuzzParseURI(f *testing.F) {
	f.Add(testEnrollment(f).URI())
	f.Add("otpauth://totp/tknock:bob?secret=AEBAGBAFAYDQQCIKBMGA2DQPCA&tknock=1&host=gw&exclude=10001,10002&v6prefix=64&proto=udp")
	f.Add("otpauth://totp/tknock:x?secret=&tknock=1&range=1-65535&len=16")
	f.Add("otpauth://totp/tknock:bob?secret=AEBAGBAFAYDQQCIKBMGA2DQPCA&tknock=1&host=gw&stun=Stun.Example:3478,%5B2001:db8::1%5D:3478,192.0.2.1:1")
	f.Add("otpauth://totp/tknock:bob?secret=AEBAGBAFAYDQQCIKBMGA2DQPCA&tknock=1&host=gw&services=ssh,vpn&check=ssh:tcp/22,vpn:udp/51820")
	f.Fuzz(func(t *testing.T, s string) {
		e, err := ParseURI(s)
		if err != nil {
			return
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("ParseURI(%q) returned an invalid enrollment: %v", s, err)
		}
		again, err := ParseURI(e.URI())
		if err != nil {
			t.Fatalf("ParseURI(URI()) of %q: %v", s, err)
		}
		if diff := cmp.Diff(e, again); diff != "" {
			t.Fatalf("round trip of %q mismatch (-first +second):\n%s", s, diff)
		}
		if _, err := Sequence(&e.Params, e.Services[0], 1, netip.MustParseAddr("192.0.2.1")); err != nil && !errors.Is(err, ErrExhausted) {
			t.Fatalf("Sequence of a parsed enrollment: %v", err)
		}
	})
}
