package totpseq

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSTUNRoundTrip(t *testing.T) {
	e := testEnrollment(t)
	e.STUN = []string{"stun.example.net:3478", "192.0.2.9:3478", "[2001:db8::9]:19302"}
	uri := e.URI()
	if !strings.Contains(uri, "&stun=stun.example.net:3478,192.0.2.9:3478,%5B2001:db8::9%5D:19302") {
		t.Errorf("URI() = %q: want the stun parameter, colons readable", uri)
	}
	got, err := ParseURI(uri)
	if err != nil {
		t.Fatalf("ParseURI(URI()) error: %v", err)
	}
	if diff := cmp.Diff(e, got); diff != "" {
		t.Errorf("ParseURI(URI()) mismatch (-want +got):\n%s", diff)
	}
	// Without servers the parameter is left out: older clients see the URI
	// they always saw.
	e.STUN = nil
	if uri := e.URI(); strings.Contains(uri, "stun=") {
		t.Errorf("URI() without STUN servers = %q: has a stun parameter", uri)
	}
}

func TestParseSTUNCanonical(t *testing.T) {
	got, err := ParseSTUN("STUN.Example.NET.:3478,[2001:DB8::1]:3478,[::ffff:192.0.2.1]:1")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"stun.example.net:3478", "[2001:db8::1]:3478", "192.0.2.1:1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseSTUN mismatch (-want +got):\n%s", diff)
	}
}

func TestParseURISTUNErrors(t *testing.T) {
	const base = "otpauth://totp/tknock:alice?secret=AEBAGBAFAYDQQCIKBMGA2DQPCAIREEYUCULBOGAZDINRYHI6D4QA&issuer=tknock&tknock=1&host=h.example&realm=r"
	tests := []struct {
		stun string
		want string // substring of the error
	}{
		{"", `parameter stun: "": empty`},
		{"stun.example.net", `parameter stun: "stun.example.net": want HOST:PORT`},
		{"stun.example.net:0", `parameter stun: "stun.example.net:0": "0" is not a port`},
		{"stun.example.net:65536", `is not a port`},
		{"stun.example.net:34x", `is not a port`},
		{":3478", `"" is not a host name or address`},
		{"bad%20name:3478", `"bad name" is not a host name or address`},
		{"-x.example:3478", `is not a host name or address`},
		{"2001:db8::1:3478", `want HOST:PORT`},
		{"%5Bfe80::1%25eth0%5D:3478", `zone`},
		{"a.example:1,b.example:2,a.example:1", `parameter stun: "a.example:1": listed twice`},
		{"a:1,a:2,a:3,a:4,a:5,a:6,a:7,a:8,a:9", `parameter stun: 9 servers: want at most 8`},
		{"a.example:1,,b.example:2", `parameter stun: "": want HOST:PORT`},
	}
	for _, tt := range tests {
		_, err := ParseURI(base + "&stun=" + tt.stun)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseURI(stun=%s) error = %v, want one containing %q", tt.stun, err, tt.want)
		}
	}
	if _, err := ParseURI(base + "&stun=a.example:1&stun=b.example:2"); err == nil || !strings.Contains(err.Error(), "parameter stun: given 2 times") {
		t.Errorf("stun given twice: error = %v", err)
	}
}

func TestValidateSTUN(t *testing.T) {
	e := testEnrollment(t)
	e.STUN = []string{"stun.example.net"}
	if err := e.Validate(); err == nil || !strings.Contains(err.Error(), "parameter stun") {
		t.Errorf("Validate with STUN %q = %v, want an error naming parameter stun", e.STUN, err)
	}
}
