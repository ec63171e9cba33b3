package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tknock/tknock/totpseq"
)

// knockdPort is the port knockd guards in the comparison: the daemons
// cannot share one, since an accept in one nftables table does not undo a
// drop in another.
const knockdPort = protectedPort + 1

// knockdTable is the nftables table knockd's command fills.
const knockdTable = "knockd"

// knockdSetup is the peer of the comparison: knockd (Debian's knockd
// package, the classic port knocker) with a 3-port TCP sequence, opening
// knockdPort for the knocking address by adding it to an nftables set, the
// way its documentation's examples run iptables.
type knockdSetup struct {
	Interface string
	Sequence  []uint16
	LogFile   string
}

// Config returns knockd.conf.
func (k knockdSetup) Config() string {
	seq := make([]string, len(k.Sequence))
	for i, p := range k.Sequence {
		seq[i] = fmt.Sprint(p)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[options]\n\tLogFile = %s\n\tInterface = %s\n\n", k.LogFile, k.Interface)
	fmt.Fprintf(&b, "[bench]\n\tsequence = %s\n\tseq_timeout = 5\n\ttcpflags = syn\n", strings.Join(seq, ","))
	fmt.Fprintf(&b, "\tcommand = nft add element inet %s allowed { %%IP%% }\n", knockdTable)
	return b.String()
}

// Ruleset returns the nftables table that keeps knockdPort shut but for
// the addresses knockd's command adds.
func (k knockdSetup) Ruleset() string {
	return fmt.Sprintf(`table inet %s {
	set allowed {
		type ipv4_addr
	}
	chain input {
		type filter hook input priority filter; policy accept;
		tcp dport %d ip saddr @allowed accept
		tcp dport %d drop
	}
}
`, knockdTable, knockdPort, knockdPort)
}

// describeSamples formats the median of samples, with their range and how
// many of want trials opened.
func describeSamples(samples []time.Duration, want int) string {
	if len(samples) == 0 {
		return fmt.Sprintf("none of %d opened", want)
	}
	r := fmt.Sprintf("median %s (min %s, max %s)", fmtMs(Percentile(samples, 50)), fmtMs(slices.Min(samples)), fmtMs(slices.Max(samples)))
	if len(samples) < want {
		r += fmt.Sprintf(", %d of %d opened", len(samples), want)
	}
	return r
}

// fastRatio returns tknock's median over knockd's, and whether it meets the
// target: every trial of both opened and the ratio is at most a third.
func fastRatio(tk, kd []time.Duration, trials int) (bool, float64) {
	if len(tk) == 0 || len(kd) == 0 {
		return false, 0
	}
	ratio := float64(Percentile(tk, 50)) / float64(Percentile(kd, 50))
	return len(tk) == trials && len(kd) == trials && ratio <= 1.0/3, ratio
}

// lossRuleset drops one in ten of the client's knock packets on their way
// out (this kernel has no netem).
func lossRuleset(r totpseq.Range) string {
	return fmt.Sprintf(`table inet tkloss {
	chain out {
		type filter hook output priority filter; policy accept;
		tcp dport %d-%d numgen random mod 10 < 1 counter drop
	}
}
`, r.Lo, r.Hi)
}
