package promtest

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseDiffMismatch(t *testing.T) {
	a, err := Parse(strings.NewReader(`# TYPE x_total counter
x_total{b="2",a="1"} 3
# TYPE g gauge
g 0.5
u 7
`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{`x_total{a="1",b="2"}`: 3, "g": 0.5, "u": 7}
	if diff := cmp.Diff(want, a); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
	b := map[string]float64{`x_total{a="1",b="2"}`: 4, "g": 0.5, "n": 1}
	d := Diff(a, b)
	if diff := cmp.Diff(map[string]string{`x_total{a="1",b="2"}`: "1", "u": "gone", "n": "new"}, d); diff != "" {
		t.Errorf("Diff (-want +got):\n%s", diff)
	}
	got := Mismatch(d, map[string]string{`x_total{a="1",b="2"}`: "1", "n": "2"}, "u")
	if diff := cmp.Diff([]string{`n changed by "new", then by "2"`}, got); diff != "" {
		t.Errorf("Mismatch (-want +got):\n%s", diff)
	}
	if _, err := Parse(strings.NewReader("x_total{ 1\n")); err == nil {
		t.Errorf("Parse of a broken line: no error")
	}
}
