package nft

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/tknock/tknock/inet"
)

// Set keys are concatenations whose every field is padded with zeros to a
// multiple of 4 bytes (the kernel's 32-bit registers): inet_proto is
// [proto 0 0 0] and inet_service is [port_hi port_lo 0 0], so
// (address . protocol . port) is 4+4+4 = 12 bytes for IPv4 and 16+4+4 = 24
// for IPv6, and (protocol . port) is 8 bytes.
const (
	key4Len  = 12
	key6Len  = 24
	keyPPLen = 8
)

// endpointKey returns the (protocol . port) key.
func endpointKey(e Endpoint) []byte {
	return appendEndpoint(make([]byte, 0, keyPPLen), e)
}

func appendEndpoint(b []byte, e Endpoint) []byte {
	b = append(b, byte(e.Proto), 0, 0, 0)
	b = binary.BigEndian.AppendUint16(b, e.Port)
	return append(b, 0, 0)
}

// grantKey returns the (address . protocol . port) key of src, which must be
// an IPv4 address or a non-mapped IPv6 address.
func grantKey(src netip.Addr, e Endpoint) []byte {
	a := src.AsSlice()
	return appendEndpoint(append(make([]byte, 0, len(a)+keyPPLen), a...), e)
}

// parseGrantKey is the inverse of grantKey.
func parseGrantKey(k []byte) (netip.Addr, Endpoint, error) {
	if len(k) != key4Len && len(k) != key6Len {
		return netip.Addr{}, Endpoint{}, fmt.Errorf("element key of %d bytes: want %d or %d", len(k), key4Len, key6Len)
	}
	n := len(k) - keyPPLen
	src, _ := netip.AddrFromSlice(k[:n])
	pp := k[n:]
	if pp[1]|pp[2]|pp[3]|pp[6]|pp[7] != 0 {
		return netip.Addr{}, Endpoint{}, fmt.Errorf("element key % x: padding is not zero", k)
	}
	return src, Endpoint{Proto: inet.Proto(pp[0]), Port: binary.BigEndian.Uint16(pp[4:6])}, nil
}
