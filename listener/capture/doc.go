// Package capture is the kernel edge of the listener: it hands knock
// frames to listener.Run. Conn is one AF_PACKET socket with a
// memory-mapped TPACKET_V3 ring, in pure Go, and an express socket beside
// it for light traffic; Filter is the classic BPF program that keeps only
// knock frames, Prefilter the eBPF program that also drops the knocks the
// tracker cannot use; Group merges the captures of several interfaces and
// reopens one that fails.
//
// The data path of one knock: the kernel runs the Filter program (or the
// Prefilter, which keeps only knocks at an anchor port the tracker
// published, or from a source seen at one) on each received frame and
// hands knock frames (SnapLen bytes at most) to the express socket while
// the traffic is light (the reader wakes at once) or copies them into the
// ring under a burst (express_linux.go); ReadFrame copies one out, and
// listener's Decoder and Tracker take it from there.
//
// On all interfaces ("any") and on links without an Ethernet header (tun,
// WireGuard, PPP) a frame starts at the IP header. Both kernel filters
// then take it for IPv4 or IPv6 by the version in its first byte only if
// its protocol field (sll_protocol, the EtherType it came with) names that
// version too, and drop it otherwise: a frame of another protocol, or IPv4
// sent as IPv6, whose payload looks like a knock is no knock. ReadFrame
// checks the same again. On an Ethernet interface the EtherType in the
// frame decides.
//
// Capture is Linux only. Elsewhere Listen and NewPrefilter return an error
// and the package still builds, so programs that import it do too.
package capture
