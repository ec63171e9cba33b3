// Package listener turns captured frames into knocks and knocks into
// grants, with no I/O of its own: the Decoder (frames to Knock values,
// allocation-free), the per-source Tracker of the knock protocol
// (docs/PROTOCOL.md section 3), and Run, the loop that reads frames from
// a Source and joins them.
//
// The frames come from a Source: in the daemon, listener/capture (an
// AF_PACKET socket on Linux); in tests, listener/listenertest, over
// frames in memory or read from a pcap file, so everything above the
// socket is tested without root. The tracker publishes the ports it can
// use next through Config.Anchors, for capture's eBPF prefilter.
package listener
