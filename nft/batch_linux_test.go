package nft

// Tests against a fake kernel (mdlayher/netlink's nltest): they need no
// root and check what is sent, message by message.

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// fakeKernel records each batch and answers like a kernel with no tables
// that accepts everything, unless fail is set: then every request gets
// that errno.
type fakeKernel struct {
	batches [][]netlink.Message // BATCH_BEGIN ... BATCH_END, one per Flush
	fail    unix.Errno
}

func (k *fakeKernel) dial(req []netlink.Message) ([]netlink.Message, error) {
	if len(req) == 0 {
		return nil, nil // drained: no more replies
	}
	if k.fail != 0 {
		return []netlink.Message{errorReply(k.fail, req[0])}, nil
	}
	if req[0].Header.Type == netlink.HeaderType(unix.NFNL_MSG_BATCH_BEGIN) {
		k.batches = append(k.batches, req)
		var acks []netlink.Message
		for _, m := range req {
			if m.Header.Flags&netlink.Acknowledge != 0 {
				acks = append(acks, errorReply(0, m))
			}
		}
		return acks, nil
	}
	// A dump (list tables): nothing there.
	return []netlink.Message{{Header: netlink.Header{
		Type: netlink.Done, Flags: netlink.Multi, Sequence: req[0].Header.Sequence, PID: req[0].Header.PID,
	}}}, nil
}

// errorReply is the kernel's NLMSG_ERROR answer to m: the negated errno,
// then m's header (errno 0 is an ack).
func errorReply(errno unix.Errno, m netlink.Message) netlink.Message {
	data := binary.NativeEndian.AppendUint32(nil, uint32(-int32(errno)))
	data = binary.NativeEndian.AppendUint32(data, uint32(nlmsgLen+len(m.Data)))
	data = binary.NativeEndian.AppendUint16(data, uint16(m.Header.Type))
	data = binary.NativeEndian.AppendUint16(data, uint16(m.Header.Flags))
	data = binary.NativeEndian.AppendUint32(data, m.Header.Sequence)
	data = binary.NativeEndian.AppendUint32(data, m.Header.PID)
	return netlink.Message{
		Header: netlink.Header{Type: netlink.Error, Sequence: m.Header.Sequence, PID: m.Header.PID},
		Data:   data,
	}
}

const nlmsgLen = 16 // sizeof(struct nlmsghdr)

func openFake(t *testing.T, cfg Config) (*Table, *fakeKernel) {
	t.Helper()
	k := &fakeKernel{}
	tb, err := Open(cfg, func(o *options) { o.dial = k.dial })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tb.Close() })
	return tb, k
}

// msg is a decoded nftables message: its type (NFT_MSG_*) and attributes.
type msg struct {
	op    int
	attrs map[uint16][]byte
}

func decode(t *testing.T, batch []netlink.Message) []msg {
	t.Helper()
	if n := len(batch); batch[0].Header.Type != unix.NFNL_MSG_BATCH_BEGIN || batch[n-1].Header.Type != unix.NFNL_MSG_BATCH_END {
		t.Fatalf("batch not framed by BATCH_BEGIN and BATCH_END")
	}
	var out []msg
	for _, m := range batch[1 : len(batch)-1] {
		if sub := int(m.Header.Type) >> 8; sub != unix.NFNL_SUBSYS_NFTABLES {
			t.Fatalf("message for subsystem %d in the batch", sub)
		}
		out = append(out, msg{op: int(m.Header.Type) & 0xff, attrs: attrs(t, m.Data[4:])})
	}
	return out
}

func attrs(t *testing.T, b []byte) map[uint16][]byte {
	t.Helper()
	as, err := netlink.UnmarshalAttributes(b)
	if err != nil {
		t.Fatal(err)
	}
	m := make(map[uint16][]byte)
	for _, a := range as {
		m[a.Type&^unix.NLA_F_NESTED] = a.Data
	}
	return m
}

func str(b []byte) string { return strings.TrimRight(string(b), "\x00") }

var opNames = map[int]string{
	unix.NFT_MSG_NEWTABLE: "newtable", unix.NFT_MSG_DELTABLE: "deltable",
	unix.NFT_MSG_NEWSET: "newset", unix.NFT_MSG_NEWSETELEM: "newsetelem", unix.NFT_MSG_DELSETELEM: "delsetelem",
	unix.NFT_MSG_NEWCHAIN: "newchain", unix.NFT_MSG_NEWRULE: "newrule",
}

// summary names each message: "newset allowed4", "newrule input".
func summary(ms []msg) []string {
	var out []string
	for _, m := range ms {
		name := opNames[m.op]
		switch m.op {
		case unix.NFT_MSG_NEWTABLE, unix.NFT_MSG_DELTABLE:
			name += " " + str(m.attrs[unix.NFTA_TABLE_NAME])
		case unix.NFT_MSG_NEWSET, unix.NFT_MSG_NEWSETELEM, unix.NFT_MSG_DELSETELEM:
			name += " " + str(m.attrs[unix.NFTA_SET_NAME])
		case unix.NFT_MSG_NEWCHAIN:
			name += " " + str(m.attrs[unix.NFTA_CHAIN_NAME])
		case unix.NFT_MSG_NEWRULE:
			name += " " + str(m.attrs[unix.NFTA_RULE_CHAIN])
		}
		out = append(out, name)
	}
	return out
}

// elementTimeouts returns the timeout of each element of a set element
// message, 0 for an element that has none.
func elementTimeouts(t *testing.T, m msg) []time.Duration {
	t.Helper()
	var out []time.Duration
	list, err := netlink.UnmarshalAttributes(m.attrs[unix.NFTA_SET_ELEM_LIST_ELEMENTS])
	if err != nil {
		t.Fatal(err)
	}
	for _, el := range list {
		a := attrs(t, el.Data)
		var d time.Duration
		if b, ok := a[unix.NFTA_SET_ELEM_TIMEOUT]; ok {
			d = time.Duration(binary.BigEndian.Uint64(b)) * time.Millisecond
		}
		out = append(out, d)
	}
	return out
}

func TestEnsureBatch(t *testing.T) {
	tb, k := openFake(t, testConfig)
	if err := tb.Ensure(); err != nil {
		t.Fatal(err)
	}
	if len(k.batches) != 1 {
		t.Fatalf("Ensure sent %d batches, want 1", len(k.batches))
	}
	ms := decode(t, k.batches[0])
	want := []string{
		"newtable tknock",
		"newset allowed4", "newset allowed6", "newset protected", "newsetelem protected",
		"newchain input",
		"newrule input", "newrule input", "newrule input", "newrule input", // ct, v4, v6, protected
		"newrule input", "newrule input", "newrule input", // three knock ranges
	}
	if diff := cmp.Diff(want, summary(ms)); diff != "" {
		t.Errorf("Ensure batch: (-want +got)\n%s", diff)
	}
	for _, m := range ms {
		switch m.op {
		case unix.NFT_MSG_NEWTABLE:
			// Never the owner flag: the table must outlive the daemon.
			if f := binary.BigEndian.Uint32(m.attrs[unix.NFTA_TABLE_FLAGS]); f != 0 {
				t.Errorf("table flags %#x, want 0", f)
			}
		case unix.NFT_MSG_NEWSET:
			name, flags := str(m.attrs[unix.NFTA_SET_NAME]), binary.BigEndian.Uint32(m.attrs[unix.NFTA_SET_FLAGS])
			if isGrantSet := name != protectedName; isGrantSet != (flags&unix.NFT_SET_TIMEOUT != 0) {
				t.Errorf("set %s: flags %#x: timeout flag wrong", name, flags)
			}
		}
	}
}

func TestAllowBatch(t *testing.T) {
	tb, k := openFake(t, testConfig)
	if err := tb.Allow(netip.MustParseAddr("::ffff:192.0.2.7"), both, 1500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := tb.Allow(netip.MustParseAddr("2001:db8::7"), ssh, time.Minute); err != nil {
		t.Fatal(err)
	}
	if len(k.batches) != 2 {
		t.Fatalf("two Allows sent %d batches, want 2", len(k.batches))
	}
	for i, tc := range []struct {
		set   string
		ttl   time.Duration
		elems int
	}{{set4Name, 1500 * time.Millisecond, 2}, {set6Name, time.Minute, 1}} {
		ms := decode(t, k.batches[i])
		want := []string{"newsetelem " + tc.set, "delsetelem " + tc.set, "newsetelem " + tc.set}
		if diff := cmp.Diff(want, summary(ms)); diff != "" {
			t.Errorf("Allow batch %d: (-want +got)\n%s", i, diff)
		}
		// Every element carries the timeout: an element without one would
		// be a grant that never ends.
		for _, m := range ms {
			got := elementTimeouts(t, m)
			wantTTL := make([]time.Duration, tc.elems)
			for j := range wantTTL {
				wantTTL[j] = tc.ttl
			}
			if diff := cmp.Diff(wantTTL, got); diff != "" {
				t.Errorf("Allow batch %d, %s: element timeouts (-want +got)\n%s", i, opNames[m.op], diff)
			}
		}
	}
}

func TestAllowRejectsBadInputBeforeSending(t *testing.T) {
	tb, k := openFake(t, testConfig)
	err := tb.Allow(netip.MustParseAddr("192.0.2.7"), ssh, 0)
	if err == nil || err.Error() != "nft: allow: ttl 0s: must be at least 1ms (the kernel counts in milliseconds)" {
		t.Errorf("Allow with ttl 0: error = %v", err)
	}
	if len(k.batches) != 0 {
		t.Errorf("a rejected Allow sent %d batches", len(k.batches))
	}
}

func TestPlainErrors(t *testing.T) {
	for _, tc := range []struct {
		errno unix.Errno
		want  error
		text  string
	}{
		{unix.EPERM, ErrPermission, "nft: list tables: permission denied: tknockd needs CAP_NET_ADMIN (run as root or grant the capability)"},
		{unix.EACCES, ErrPermission, "nft: list tables: permission denied: tknockd needs CAP_NET_ADMIN (run as root or grant the capability)"},
		{unix.EPROTONOSUPPORT, ErrNotSupported, "nft: list tables: the kernel has no nftables support (nf_tables module not loaded?)"},
		{unix.EAFNOSUPPORT, ErrNotSupported, "nft: list tables: the kernel has no nftables support (nf_tables module not loaded?)"},
		{unix.ENOENT, ErrNotSupported, "nft: list tables: the kernel has no nftables support (nf_tables module not loaded?)"},
		{unix.EOPNOTSUPP, ErrNotSupported, "nft: list tables: the kernel has no nftables support (nf_tables module not loaded?)"},
	} {
		k := &fakeKernel{fail: tc.errno}
		_, err := Open(testConfig, func(o *options) { o.dial = k.dial })
		if !errors.Is(err, tc.want) || !errors.Is(err, tc.errno) || err.Error() != tc.text {
			t.Errorf("Open when the kernel answers %v: error = %v; want %q wrapping %v", tc.errno, err, tc.text, tc.want)
		}
	}

	// After Open: a vanished table, and a feature the kernel lacks.
	for _, tc := range []struct {
		errno unix.Errno
		want  error
		text  string
	}{
		{unix.ENOENT, ErrMissing, "nft: allow 192.0.2.7 tcp/22: table or set missing (ruleset flushed?)"},
		{unix.EOPNOTSUPP, ErrNotSupported, "nft: allow 192.0.2.7 tcp/22: the kernel's nftables lacks a feature this table needs (kernel too old?)"},
		{unix.EPERM, ErrPermission, "nft: allow 192.0.2.7 tcp/22: permission denied: tknockd needs CAP_NET_ADMIN (run as root or grant the capability)"},
		{unix.EINVAL, unix.EINVAL, "nft: allow 192.0.2.7 tcp/22: "},
	} {
		tb, k := openFake(t, testConfig)
		k.fail = tc.errno
		err := tb.Allow(netip.MustParseAddr("192.0.2.7"), ssh, time.Second)
		if !errors.Is(err, tc.want) || !errors.Is(err, tc.errno) || !strings.HasPrefix(err.Error(), tc.text) {
			t.Errorf("Allow when the kernel answers %v: error = %v; want %q wrapping %v", tc.errno, err, tc.text, tc.want)
		}
	}
}
