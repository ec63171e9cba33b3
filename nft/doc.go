// Package nft owns the one nftables table through which tknockd opens
// access: a knock that completes becomes a set element (source address .
// protocol . port) with a kernel timeout, so access closes when the time is
// up even if the daemon has died.
//
// The package talks to the kernel over netlink (github.com/google/nftables);
// it never runs the nft program. It touches nothing on the host but its own
// table, and never sets the table "owner" flag: that flag makes the kernel
// delete the table when the daemon's socket closes, so a crash would open the
// protected ports.
//
// # Own-table mode (the default)
//
// [Table.Apply] builds, in one atomic netlink batch, the table inet tknock
// (shown by `nft list ruleset` as):
//
//	table inet tknock {
//		set allowed4 { type ipv4_addr . inet_proto . inet_service; flags timeout; }
//		set allowed6 { type ipv6_addr . inet_proto . inet_service; flags timeout; }
//		set protected { type inet_proto . inet_service; elements = { tcp . 22 } }
//		chain closed {
//			ip saddr . meta l4proto . th dport @allowed4 accept
//			ip6 saddr . meta l4proto . th dport @allowed6 accept
//			fib daddr type local counter drop
//		}
//		chain guard {
//			meta iiftype loopback return        # unless ProtectLoopback
//			tcp flags != syn / syn,ack return
//			meta l4proto . th dport @protected goto closed
//			# with DropKnocks, one rule per merged knock range:
//			tcp dport 10000-32767 fib daddr type local counter drop
//			udp dport 40000-40999 fib daddr type local counter drop
//		}
//		chain prerouting {
//			type filter hook prerouting priority raw; policy accept;
//			jump guard
//		}
//		chain input {
//			type filter hook input priority filter - 10; policy accept;
//			jump guard
//		}
//	}
//
// The table holds no ct expression, so it never turns connection tracking
// on, and it decides on each packet alone: a TCP segment that is not a SYN
// without ACK passes (an established connection outlives its grant); a SYN,
// or a UDP datagram, to a protected endpoint passes with a grant and is
// dropped without one; knock packets are dropped. UDP has no connection the
// table could follow without conntrack, so a UDP flow ends with its grant.
//
// The prerouting chain runs at priority raw (-300): before connection
// tracking (-200), so a flood it drops never becomes conntrack entries even
// when the host's own rules use conntrack, and before DNAT (-100), so it
// sees the port a client dialed: a port the host forwards to a container
// (Docker -p 8080:80) is protected as "tcp/8080" like a local one. The
// input chain repeats the check for what prerouting cannot see whole:
// fragments, which the kernel reassembles before input (and before
// prerouting only when conntrack is on). "fib daddr type local" limits
// the drops to packets addressed to this host, so a host that routes for
// others drops none of their traffic. Loopback (the host talking to
// itself, on any of its addresses) is exempt unless [Config.ProtectLoopback].
//
// The base chains' policy is accept, and an accept in one base chain does
// not skip the base chains that follow, so the host's own ruleset still
// filters everything this table lets through: this table only takes away.
// A host firewall with a drop policy must itself accept the protected ports
// ([CheckHost] warns when it does not).
//
// Apply is idempotent and keeps the two grant sets, with their elements,
// across a rebuild: a restarted or reconfigured daemon does not make users
// knock again.
//
// [Table.Watch] keeps the table as built while the daemon runs: it follows
// nftables' change notifications and, when someone else changes or deletes
// the table (`nft flush ruleset`, as nftables.service and `nft -f` of most
// rulesets do), rebuilds it within milliseconds with the live grants and
// the time they had left. The grants come from a record Allow keeps, seeded
// from the sets at the first Apply: once the sets are gone there is nothing
// left to read back.
//
// The table stays when the daemon stops (fail closed: strangers still cannot
// reach the protected ports); [Table.Teardown] removes it, and only it.
//
// # External-set mode
//
// An administrator who owns the whole ruleset can instead let the daemon only
// add elements to two sets in their own table ([Config.External]). The daemon
// then creates and deletes nothing. In an inet table, the administrator adds
// the two sets, and the two rules to their input chain before the rules that
// accept the protected services (an IPv4-only host needs only the first set
// and the first rule):
//
//	set tknock4 { type ipv4_addr . inet_proto . inet_service; flags timeout; }
//	set tknock6 { type ipv6_addr . inet_proto . inet_service; flags timeout; }
//	ip saddr . meta l4proto . th dport @tknock4 accept
//	ip6 saddr . meta l4proto . th dport @tknock6 accept
//
// and configures External{Family: "inet", Table: "filter", Set4: "tknock4",
// Set6: "tknock6"}. Their ruleset must itself drop new connections to the
// protected ports that these rules did not accept. The "flags timeout" line is
// checked by [Table.Apply]: without it the kernel would silently keep every
// grant forever. To protect a port the host forwards by DNAT, their check
// must run before DNAT (a prerouting chain at a priority below -100).
//
// When the sets vanish (their ruleset is flushed or reloaded), Watch logs an
// error (event external_sets_missing) and Allow fails saying so; Watch checks
// again at every ruleset change and every few seconds, and when the sets are
// back, or were deleted and created again in one transaction, it puts the
// live grants back into them.
package nft
