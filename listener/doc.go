// Package listener turns packets into knocks and knocks into grants: the
// capture (an AF_PACKET socket with a memory-mapped TPACKET_V3 ring and a
// kernel BPF filter, Linux only, pure Go: the eBPF prefilter is
// assembled with cilium/ebpf), the decoder (frames to Knock
// values, allocation-free), the per-source tracker of the knock protocol
// (docs/PROTOCOL.md section 3), and the run loop that joins them.
//
// The run loop reads frames from a Source: the real Capture, or a
// SliceSource over frames in memory or read from a pcap file (ReadPcap), so
// everything above the socket is tested without root.
//
// The data path of one knock: the kernel runs the Filter program (or the
// eBPF Prefilter, which keeps only the knocks the tracker can use: at an
// anchor port of the tables the tracker publishes through Config.Anchors,
// or from a source seen at one) on each received frame and hands knock
// frames (SnapLen bytes at most) to the
// capture's express socket while the traffic is light (the reader wakes at
// once) or copies them into the ring under a burst (express_linux.go);
// ReadFrame copies one out; Decoder.Decode checks it again and
// returns a Knock (source address, protocol, port, capture time); the
// tracker advances the source's candidates.
package listener
