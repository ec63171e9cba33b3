package main

import (
	"fmt"
	"io"

	"github.com/tknock/tknock/internal/config"
	"github.com/tknock/tknock/totpseq"
)

// writeStrength reports how hard the enrolled users' doors are to guess:
// the weakest user's bits per sequence and the probability that one
// attempt (an anchor and k-1 guessed bound ports; the anchor is no secret
// from whoever saw a knock) opens some door, summed over every live
// candidate: users times their services times the windows in the skew.
func writeStrength(w io.Writer, c *config.Config, users []*totpseq.Enrollment) {
	if len(users) == 0 {
		return
	}
	windows := 2*c.Skew + 1
	weakest, candidates, odds := users[0], 0, 0.0
	for _, u := range users {
		if u.Bits() < weakest.Bits() {
			weakest = u
		}
		n := len(u.Services) * windows
		candidates += n
		odds += float64(n) * u.Odds()
	}
	fmt.Fprintf(w, "strength: weakest user %s, %.1f bits per sequence (len %d, range %v); "+
		"one guessed attempt opens a door with probability at most %.1e (%d candidates: users x services x %d windows)\n",
		weakest.Name, weakest.Bits(), weakest.Length, weakest.Range, odds, candidates, windows)
}
