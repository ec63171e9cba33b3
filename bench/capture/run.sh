#!/bin/sh
# Side-by-side capture benchmark: the pure-Go TPACKET_V3 ring (Capture)
# against gopacket's cgo afpacket ring, on the same bounded trafgen floods
# (1,000,000 frames, at most 10 s each) between two fresh namespaces.
# Needs root, trafgen (netsniff-ng), nft, and cgo (a C compiler) for the
# afpacket side. The rounds alternate the two readers, because the rates
# move with the load of the machine.
#
#   bench/capture/run.sh [rounds]      (default 3; prints benchstat-style lines)
set -eu
rounds=${1:-3}
cd "$(dirname "$0")/../.."
bin=$(mktemp -d)/listener.test
trap 'rm -rf "$(dirname "$bin")"' EXIT
CGO_ENABLED=1 go test -tags cgobench -c -o "$bin" ./listener
i=1
while [ "$i" -le "$rounds" ]; do
	for b in BenchmarkCaptureFlood BenchmarkAfpacketFlood; do
		(cd listener && "$bin" -test.run '^$' -test.bench "^$b\$" -test.benchtime 1x) | grep '^Benchmark'
	done
	i=$((i + 1))
done
"$bin" -test.run '^$' -test.bench '^BenchmarkCaptureLatency$' -test.benchtime 300x | grep '^Benchmark'
