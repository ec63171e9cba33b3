// Package promtest reads a scrape of a Prometheus endpoint for tests: every
// sample by its name and labels, and the changes between two scrapes.
package promtest

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Parse reads the text exposition format into every sample by its name
// with its labels sorted, as in `x_total{reason="replay"}`. Counters,
// gauges and untyped samples only: the daemon publishes nothing else.
func Parse(r io.Reader) (map[string]float64, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	out := make(map[string]float64)
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			labels := make([]string, 0, len(m.GetLabel()))
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			key := name
			if len(labels) > 0 {
				slices.Sort(labels)
				key += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.GetCounter() != nil:
				out[key] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[key] = m.GetGauge().GetValue()
			case m.GetUntyped() != nil:
				out[key] = m.GetUntyped().GetValue()
			default:
				return nil, fmt.Errorf("%s: not a counter, gauge or untyped sample", key)
			}
		}
	}
	return out, nil
}

// Diff returns, for every series of a or b whose value differs, how: b's
// value minus a's, "new" or "gone".
func Diff(a, b map[string]float64) map[string]string {
	d := make(map[string]string)
	for k, va := range a {
		vb, ok := b[k]
		switch {
		case !ok:
			d[k] = "gone"
		case vb != va:
			d[k] = fmt.Sprint(vb - va)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			d[k] = "new"
		}
	}
	return d
}

// Mismatch lists the series whose change differs between two diffs, x and
// y, leaving out those named in skip, one line each, sorted.
func Mismatch(x, y map[string]string, skip ...string) []string {
	keys := maps.Clone(x)
	maps.Copy(keys, y)
	var out []string
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		if slices.Contains(skip, k) || x[k] == y[k] {
			continue
		}
		out = append(out, fmt.Sprintf("%s changed by %q, then by %q", k, x[k], y[k]))
	}
	return out
}
