// Package client builds and sends knocks for an enrollment, and keeps what
// the tknock command needs on the user's machine: the profile store (one
// enrollment file per server in the user's config directory), the memory of
// time windows already used (in the user's cache directory), QR code import,
// waiting for the door to open, and the pipe that ssh's ProxyCommand uses.
//
// The network is injected: a [Knocker] sends through a [Dialer], resolves
// host names through a [Resolver] and finds its outbound address through a
// Route function, so tests see every knock without sending a packet. The
// real [NetDialer] needs no privilege on Linux, macOS or Windows: a TCP knock
// is a non-blocking connect whose socket is closed at once, a UDP knock one
// small datagram.
//
// Nothing in this package prints or logs a secret or the ports of a
// sequence.
package client
