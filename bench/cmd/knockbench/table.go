package main

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Verdict says whether a row met its target.
type Verdict int

// Verdicts. Info rows have no target; Missing rows could not be measured.
const (
	Info Verdict = iota
	Met
	Missed
	Missing
)

func (v Verdict) String() string {
	switch v {
	case Met:
		return "yes"
	case Missed:
		return "NO"
	case Missing:
		return "n/a"
	default:
		return ""
	}
}

// verdict returns Met when ok and Missed otherwise.
func verdict(ok bool) Verdict {
	if ok {
		return Met
	}
	return Missed
}

// Row is one line of the result table.
type Row struct {
	Item    string // the item number: "1" .. "5"
	Measure string // what was measured
	Result  string // the figure, with its unit
	Target  string // the target, or "" for an informational row
	Verdict Verdict
}

// Table is the single result table of a run: a header describing the
// machine and the rows in the order they were measured. It is filled from
// one goroutine.
type Table struct {
	Header []string // "key: value" lines printed above the rows
	Rows   []Row
	Notes  []string // printed below the rows, one per line
}

// Add appends a row.
func (t *Table) Add(r Row) { t.Rows = append(t.Rows, r) }

// Note appends a note printed below the rows.
func (t *Table) Note(format string, args ...any) {
	t.Notes = append(t.Notes, fmt.Sprintf(format, args...))
}

// Summary counts the rows by verdict.
func (t *Table) Summary() (met, missed, missing int) {
	for _, r := range t.Rows {
		switch r.Verdict {
		case Met:
			met++
		case Missed:
			missed++
		case Missing:
			missing++
		}
	}
	return met, missed, missing
}

// WriteTo prints the table as aligned plain text (it reads well in a
// terminal and in a file, and diffs line by line between runs).
func (t *Table) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	for _, h := range t.Header {
		b.WriteString(h)
		b.WriteByte('\n')
	}
	if len(t.Header) > 0 {
		b.WriteByte('\n')
	}
	cols := [][]string{{"#", "measure", "result", "target", "met"}}
	for _, r := range t.Rows {
		cols = append(cols, []string{r.Item, r.Measure, r.Result, r.Target, r.Verdict.String()})
	}
	width := make([]int, len(cols[0]))
	for _, c := range cols {
		for i, s := range c {
			width[i] = max(width[i], utf8.RuneCountInString(s))
		}
	}
	line := func(c []string) {
		var l strings.Builder
		for i, s := range c {
			if i > 0 {
				l.WriteString("  ")
			}
			l.WriteString(s)
			if i < len(c)-1 {
				l.WriteString(strings.Repeat(" ", width[i]-utf8.RuneCountInString(s)))
			}
		}
		b.WriteString(strings.TrimRight(l.String(), " "))
		b.WriteByte('\n')
	}
	line(cols[0])
	rule := make([]string, len(width))
	for i, n := range width {
		rule[i] = strings.Repeat("-", n)
	}
	line(rule)
	for i, c := range cols[1:] {
		// A blank line between items makes the five parts easy to find.
		if i > 0 && t.Rows[i].Item != t.Rows[i-1].Item {
			b.WriteByte('\n')
		}
		line(c)
	}
	met, missed, missing := t.Summary()
	fmt.Fprintf(&b, "\ntargets met: %d, missed: %d, not measured: %d\n", met, missed, missing)
	for _, n := range t.Notes {
		b.WriteString("note: ")
		b.WriteString(n)
		b.WriteByte('\n')
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}
