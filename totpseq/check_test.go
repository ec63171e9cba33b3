package totpseq

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/tknock/tknock/inet"
)

func TestCheckRoundTrip(t *testing.T) {
	e := testEnrollment(t)
	e.Services = []string{"ssh", "web", "vpn"}
	e.Check = []CheckPort{{"ssh", inet.TCP, 22}, {"vpn", inet.UDP, 51820}}
	uri := e.URI()
	if !strings.Contains(uri, "&check=ssh:tcp/22,vpn:udp/51820") {
		t.Errorf("URI() = %q, want check=ssh:tcp/22,vpn:udp/51820", uri)
	}
	got, err := ParseURI(uri)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(e.Check, got.Check); diff != "" {
		t.Errorf("check after a round trip (-want +got):\n%s", diff)
	}
	if c, ok := got.CheckFor("vpn"); !ok || c.Port != 51820 || c.Proto != inet.UDP {
		t.Errorf("CheckFor(vpn) = %v, %v", c, ok)
	}
	if _, ok := got.CheckFor("web"); ok {
		t.Error("CheckFor(web) found a check port; the URI has none")
	}
	e.Check = nil
	if uri := e.URI(); strings.Contains(uri, "check=") {
		t.Errorf("URI() without check ports = %q: has a check parameter", uri)
	}
}

func TestParseURICheckErrors(t *testing.T) {
	const base = "otpauth://totp/tknock:alice?secret=AEBAGBAFAYDQQCIKBMGA2DQPCAIREEYUCULBOGAZDINRYHI6D4QA&issuer=tknock&tknock=1&host=h.example&services=ssh,web"
	for _, tc := range []struct{ check, want string }{
		{"", `parameter check: "": empty`},
		{"ssh", `parameter check: "ssh": want SERVICE:PROTO/PORT`},
		{"ssh:22", `parameter check: "ssh:22": want SERVICE:PROTO/PORT`},
		{"ssh:icmp/22", `parameter check: "ssh:icmp/22": protocol "icmp": want tcp or udp`},
		{"ssh:tcp/0", `parameter check: "ssh:tcp/0": "0" is not a port`},
		{"ssh:tcp/70000", `parameter check: "ssh:tcp/70000": "70000" is not a port`},
		{"SSH:tcp/22", `parameter check: "SSH:tcp/22": bad service name`},
		{"db:tcp/5432", `parameter check: "db:tcp/5432": service db is not in services (ssh,web)`},
		{"ssh:tcp/22,ssh:tcp/2222", `parameter check: "ssh:tcp/2222": service ssh listed twice`},
	} {
		_, err := ParseURI(base + "&check=" + tc.check)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseURI(check=%s) = %v, want an error containing %q", tc.check, err, tc.want)
		}
	}
	// Unknown to an older client, the parameter is ignored; this one reads it.
	e, err := ParseURI(base + "&check=web:tcp/443")
	if err != nil || len(e.Check) != 1 || e.Check[0].String() != "web:tcp/443" {
		t.Errorf("ParseURI(check=web:tcp/443) = %v, %v", e, err)
	}
}

func TestSetCheck(t *testing.T) {
	e := testEnrollment(t)
	e.Services = []string{"ssh", "web"}
	if err := e.SetCheck(CheckPort{"ssh", inet.TCP, 22}); err != nil {
		t.Fatal(err)
	}
	if err := e.SetCheck(CheckPort{"ssh", inet.TCP, 2222}); err != nil {
		t.Fatal(err)
	}
	if want := []CheckPort{{"ssh", inet.TCP, 2222}}; !cmp.Equal(e.Check, want) {
		t.Errorf("Check = %v, want %v", e.Check, want)
	}
	if err := e.SetCheck(CheckPort{"db", inet.TCP, 5432}); err == nil || !strings.Contains(err.Error(), `no service "db"`) {
		t.Errorf("SetCheck(db) = %v, want an error", err)
	}
}
