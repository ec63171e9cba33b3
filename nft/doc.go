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
// [Table.Ensure] builds, in one atomic netlink batch, the table inet tknock
// (shown by `nft list ruleset` as):
//
//	table inet tknock {
//		set allowed4 { type ipv4_addr . inet_proto . inet_service; flags timeout; }
//		set allowed6 { type ipv6_addr . inet_proto . inet_service; flags timeout; }
//		set protected { type inet_proto . inet_service; elements = { tcp . 22 } }
//		chain input {
//			type filter hook input priority filter - 10; policy accept;
//			ct state established,related accept
//			ip saddr . meta l4proto . th dport @allowed4 accept
//			ip6 saddr . meta l4proto . th dport @allowed6 accept
//			meta l4proto . th dport @protected counter drop
//			# with DropKnocks, one rule per merged knock range:
//			tcp dport 10000-32767 tcp flags syn / syn,ack counter drop
//			udp dport 40000-40999 counter drop
//		}
//	}
//
// The chain runs just before the usual filter priority. Its policy is
// accept, and an accept in one base chain does not skip the base chains that
// follow, so the host's own ruleset still filters everything this table lets
// through: this table only takes away (new connections to protected ports
// from sources without a grant, and knock packets, which then look filtered
// to a scanner rather than closed).
//
// Ensure is idempotent and keeps the two grant sets, with their elements,
// across a rebuild: a restarted or reconfigured daemon does not make users
// knock again.
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
// checked by [Table.Ensure]: without it the kernel would silently keep every
// grant forever.
package nft
