// Package e2e holds the end-to-end tests of tknock: the real tknockd and
// tknock binaries, built once per run, in network namespaces joined by veth
// pairs (a server, a client and a stranger), with real packets and a real
// nftables table. Each test builds its own namespaces and removes them.
//
// The tests need root and Linux. Without root they skip; with CI=true they
// fail instead (internal/nstest.RequireRoot). Run them with
//
//	sudo go test ./e2e/
//
// or through `make test`.
package e2e
