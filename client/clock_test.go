package client

import (
	"errors"
	"testing"
	"time"
)

func TestCheckClock(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name         string
		now, written time.Time
		bad          bool
	}{
		{"fine", now, now.Add(-time.Hour), false},
		{"no file time", now, time.Time{}, false},
		{"file a little ahead", now, now.Add(time.Minute), false},
		{"before 2024", time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC), time.Time{}, true},
		{"epoch", time.Unix(0, 0), time.Time{}, true},
		{"set back", now, now.Add(48 * time.Hour), true},
	} {
		err := CheckClock(tc.now, tc.written)
		if (err != nil) != tc.bad || (err != nil && !errors.Is(err, ErrClock)) {
			t.Errorf("%s: CheckClock(%v, %v) = %v, want bad=%v", tc.name, tc.now, tc.written, err, tc.bad)
		}
	}
}
