package listenertest

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"github.com/tknock/tknock/listener"
)

func TestSliceSource(t *testing.T) {
	frames := []listener.Frame{V4SYN().Frame(t), V6UDP().Frame(t)}
	s := NewSliceSource(frames)
	var src listener.Source = s
	for i := range frames {
		f, err := src.ReadFrame()
		if err != nil {
			t.Fatalf("ReadFrame %d: %v", i, err)
		}
		if !bytes.Equal(f.Data, frames[i].Data) {
			t.Errorf("frame %d differs", i)
		}
	}
	if _, err := src.ReadFrame(); err != io.EOF {
		t.Errorf("ReadFrame after the last = %v, want io.EOF", err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := src.ReadFrame(); !errors.Is(err, listener.ErrClosed) {
		t.Errorf("ReadFrame after Close = %v, want ErrClosed", err)
	}
}

// TestSliceSourceReadFrames: ReadFrames hands over the frames in order,
// as many as fit and are left, then io.EOF, and ErrClosed after Close;
// ReadFrame and ReadFrames share the position.
func TestSliceSourceReadFrames(t *testing.T) {
	var frames []listener.Frame
	for _, c := range Cases() {
		frames = append(frames, c.Frame(t))
	}
	if len(frames) < 5 {
		t.Fatalf("%d frame cases, want at least 5", len(frames))
	}
	s := NewSliceSource(frames)
	var src listener.BatchSource = s
	var got []listener.Frame
	fs := make([]listener.Frame, 2)
	if f, err := src.ReadFrame(); err != nil {
		t.Fatalf("ReadFrame: %v", err)
	} else {
		got = append(got, f)
	}
	for {
		n, err := src.ReadFrames(fs)
		if err == io.EOF {
			if n != 0 {
				t.Errorf("ReadFrames at the end = %d, io.EOF; want 0 frames with the error", n)
			}
			break
		}
		if err != nil {
			t.Fatalf("ReadFrames after %d frames: %v", len(got), err)
		}
		if n < 1 || n > len(fs) || (n < len(fs) && len(got)+n != len(frames)) {
			t.Fatalf("ReadFrames after %d of %d frames = %d, want %d", len(got), len(frames), n, min(len(fs), len(frames)-len(got)))
		}
		got = append(got, fs[:n]...)
	}
	if diff := cmp.Diff(frames, got); diff != "" {
		t.Errorf("frames read (-want +got):\n%s", diff)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	s.next = 0 // frames left: Close still wins
	if n, err := src.ReadFrames(fs); n != 0 || !errors.Is(err, listener.ErrClosed) {
		t.Errorf("ReadFrames after Close = %d, %v; want 0, ErrClosed", n, err)
	}
}

func TestPcapRoundTrip(t *testing.T) {
	for _, link := range []listener.LinkType{listener.LinkEthernet, listener.LinkIP} {
		var frames []listener.Frame
		for _, c := range Cases() {
			if f := c.Frame(t); f.Link == link {
				f.Time, f.Ifindex = FixtureTime(), 0 // a pcap file keeps no interface index
				frames = append(frames, f)
			}
		}
		var buf bytes.Buffer
		if err := WritePcap(&buf, frames); err != nil {
			t.Fatal(err)
		}
		got, err := ReadPcap(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(frames, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%v frames after a pcap round trip (-want +got):\n%s", link, diff)
		}
	}
	if err := WritePcap(io.Discard, []listener.Frame{V4SYN().Frame(t), With(V4SYN(), func(v *Packet) { v.Link = listener.LinkIP }).Frame(t)}); err == nil ||
		!strings.Contains(err.Error(), "frame 1: link type ip, but frame 0 is ethernet") {
		t.Errorf("WritePcap of mixed link types = %v, want an error naming frame 1", err)
	}
}

// TestReadPcapFixture decodes testdata/knocks.pcap: the Ethernet frames of
// Cases(), as WritePcap wrote them (go test -run TestReadPcapFixture
// -update rewrites it).
func TestReadPcapFixture(t *testing.T) {
	path := filepath.Join("testdata", "knocks.pcap")
	var cases []Case
	var frames []listener.Frame
	for _, c := range Cases() {
		if f := c.Frame(t); f.Link == listener.LinkEthernet && len(f.Data) > 0 {
			cases, frames = append(cases, c), append(frames, f)
		}
	}
	if *update {
		var buf bytes.Buffer
		if err := WritePcap(&buf, frames); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := ReadPcap(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(cases) {
		t.Fatalf("%s: %d frames, want %d (rewrite it with -update)", path, len(got), len(cases))
	}
	d := listener.NewDecoder(Ranges())
	for i, c := range cases {
		if _, ok := d.Decode(got[i]); ok != (c.Want == Knock) {
			t.Errorf("%s frame %d (%s): knock = %v, want %v", path, i, c.Name, ok, c.Want == Knock)
		}
	}
}

// TestReadPcapCooked reads a Linux SLL capture ("tcpdump -i any -y
// LINUX_SLL"): the cooked header is removed, outgoing and non-IP packets
// are left out.
func TestReadPcapCooked(t *testing.T) {
	ip := func(p Packet) []byte { p.Link = listener.LinkIP; return p.Frame(t).Data }
	sll := func(pkttype, proto uint16, payload []byte) []byte {
		h := make([]byte, 16)
		h[0], h[1] = byte(pkttype>>8), byte(pkttype)
		h[14], h[15] = byte(proto>>8), byte(proto)
		return append(h, payload...)
	}
	var buf bytes.Buffer
	w := pcapgo.NewWriter(&buf)
	if err := w.WriteFileHeader(65535, layers.LinkTypeLinuxSLL); err != nil {
		t.Fatal(err)
	}
	for _, data := range [][]byte{
		sll(0, 0x0800, ip(V4UDP())),
		sll(4, 0x0800, ip(V4UDP())), // outgoing
		sll(0, 0x0806, make([]byte, 28)),
		sll(0, 0x86dd, ip(V6SYN())),
	} {
		if err := w.WritePacket(gopacket.CaptureInfo{CaptureLength: len(data), Length: len(data), Timestamp: FixtureTime()}, data); err != nil {
			t.Fatal(err)
		}
	}
	frames, err := ReadPcap(&buf)
	if err != nil {
		t.Fatal(err)
	}
	d := listener.NewDecoder(Ranges())
	var ports []uint16
	for _, f := range frames {
		if f.Link != listener.LinkIP {
			t.Errorf("cooked frame with link %v, want ip", f.Link)
		}
		if k, ok := d.Decode(f); ok {
			ports = append(ports, k.Port)
		}
	}
	if want := []uint16{V4UDP().DstPort, V6SYN().DstPort}; !cmp.Equal(ports, want) {
		t.Errorf("knocks from a cooked capture to ports %v, want %v", ports, want)
	}
}

func TestReadPcapErrors(t *testing.T) {
	var buf bytes.Buffer
	w := pcapgo.NewWriter(&buf)
	if err := w.WriteFileHeader(65535, layers.LinkTypePPP); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "pcap: read header: EOF"},
		{"garbage", []byte("not a pcap file at all"), "pcap: "},
		{"ppp", buf.Bytes(), "link type PPP (9): want Ethernet, raw IP, or Linux SLL"},
	} {
		_, err := ReadPcap(bytes.NewReader(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: ReadPcap error = %v, want one containing %q", c.name, err, c.want)
		}
	}
}

var update = flag.Bool("update", false, "rewrite testdata files")
