# tknock: port knocking with HMAC-derived, source-bound, time-windowed sequences.
#
#   make all       the same as make build
#   make build     the binaries, static (CGO_ENABLED=0), with the VCS revision for --version, into bin/
#   make test      installs missing test tools (as root), lint, cross builds of the client, every test
#   make lint      go vet, staticcheck, gofmt, and go mod tidy -diff (go.mod and tools/go.mod)
#   make cross     the client for linux, darwin and windows on amd64 and arm64
#   make unit      every test, without lint and cross (root tests fail when CI=true and not root)
#   make tools     installs the test programs that are missing (as root, with make deps)
#   make fuzz      every fuzz target for FUZZTIME (60s) each; FUZZ=FuzzName or FUZZ=./pkg for one
#   make package   the .deb and .rpm into dist/ (nfpm): binaries, unit, config, man pages, completions
#   make deps      the Debian packages the tests use, and the Go modules (needs root and apt-get)
#   make demo      the README's demo (root): namespaces, the daemon, a knock, narrated (~20 s)
#   make bench     the benchmarks (root, a few minutes), one table into bench/results/
#   make clean     removes bin/ and dist/
#   make help      this list

# sudo's secure_path usually lacks Go's directory: add the default install's.
export PATH := $(PATH):/usr/local/go/bin
GO       ?= go
BIN      := bin
FUZZTIME ?= 60s
export CGO_ENABLED ?= 0

.PHONY: all build cross test tools unit lint fuzz deps clean demo bench package help

all: build

help:
	@sed -n '3,/^$$/s/^#   make //p' $(firstword $(MAKEFILE_LIST))

# --version prints the module version and the VCS revision from the build
# information. go build stamps the revision itself only where .git is a
# directory (not in a git worktree) and -buildvcs is not false (GOFLAGS may
# say -buildvcs=false: stamping fails when root builds another user's
# checkout); -trimpath does not matter. So the revision also goes in with -X.
REVISION := $(shell git rev-parse HEAD 2>/dev/null)
MODIFIED := $(shell git status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo true)
LDFLAGS  := -X github.com/tknock/tknock/internal/version.revision=$(REVISION) \
	-X github.com/tknock/tknock/internal/version.modified=$(MODIFIED)

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

# The .deb and .rpm (into DIST), with nfpm from tools/go.mod (its own
# module, so the packager's dependencies stay out of the binaries' go.mod;
# offline once `make deps` has downloaded it). The staged files, made from
# the binaries themselves: man pages (PROGRAM __man, from the kong models),
# completions (PROGRAM completion SHELL), the unit with the packaged path of
# tknockd. VERSION is the newest v* tag, else 0.0~gitDATE.REV.
DIST    ?= dist
STAGE   := $(abspath $(DIST))/stage
VERSION ?= $(shell v=$$(git describe --tags --match 'v[0-9]*' 2>/dev/null) && echo "$${v#v}" | tr - + || \
	git log -1 --format='0.0~git%cd.%h' --date=format:%Y%m%d 2>/dev/null || echo 0.0~unknown)
ARCH    ?= $(shell $(GO) env GOARCH)
package:
	rm -rf $(STAGE) && mkdir -p $(STAGE)/completions
	GOARCH=$(ARCH) $(GO) build -trimpath -ldflags '-s -w $(LDFLAGS)' -o $(STAGE)/ ./cmd/tknock ./cmd/tknockd
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(STAGE)/host/ ./cmd/tknock ./cmd/tknockd
	$(STAGE)/host/tknock __man | gzip -9n > $(STAGE)/tknock.1.gz
	$(STAGE)/host/tknockd __man | gzip -9n > $(STAGE)/tknockd.8.gz
	for p in tknock tknockd; do for sh in bash zsh fish; do \
		$(STAGE)/host/$$p completion $$sh > $(STAGE)/completions/$$p.$$sh || exit 1; \
	done; done
	sed 's|/usr/local/bin/tknockd|/usr/sbin/tknockd|g' deploy/tknockd.service > $(STAGE)/tknockd.service
	printf 'tknock ($(VERSION)-1) unstable; urgency=medium\n\n  * Built from revision $(REVISION).\n\n -- tknock maintainers <tknock@example.org>  %s\n' \
		"$$(git log -1 --format=%cD 2>/dev/null || date -R)" | gzip -9n > $(STAGE)/changelog.gz
	$(GO) -C tools build -o $(STAGE)/host/nfpm github.com/goreleaser/nfpm/v2/cmd/nfpm
	for p in deb rpm; do \
		STAGE=$(STAGE) VERSION='$(VERSION)' ARCH=$(ARCH) $(STAGE)/host/nfpm package \
			--config packaging/nfpm.yaml --packager $$p --target $(DIST)/ || exit 1; \
	done

# The client runs on Linux, macOS and Windows; the daemon on Linux only.
cross:
	@for os in linux darwin windows; do for arch in amd64 arm64; do \
		echo "build cmd/tknock for $$os/$$arch"; \
		GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -o /dev/null ./cmd/tknock || exit 1; \
	done; done

lint:
	$(GO) vet ./...
	$(GO) tool staticcheck ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt would change the files above"; exit 1; }
	@$(GO) mod tidy -diff || { echo "go.mod or go.sum is not tidy: run go mod tidy"; exit 1; }
	@$(GO) -C tools mod tidy -diff || { echo "tools/go.mod or tools/go.sum is not tidy: run go -C tools mod tidy"; exit 1; }

# Root tests (nftables, capture, end to end) skip without root and fail
# instead when CI=true.
unit:
	$(GO) test -count=1 -timeout 30m ./...

test: tools lint cross unit

# The programs the tests use; missing ones are installed when we can.
TOOLS := ip nft nmap hping3 trafgen tcpdump zbarimg turnserver setpriv strace systemd-analyze lintian rpm dpkg-deb groff man bash fish zsh git make fail2ban-regex
tools:
	@missing=$$(for t in $(TOOLS); do command -v $$t >/dev/null 2>&1 || echo $$t; done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing the test tools ($$missing missing)"; $(MAKE) deps; \
	else \
		echo "note: $$missing not installed: the tests that need them skip (run as root to install them with apt-get)"; \
	fi

# FUZZ=./listener (every target of one package, or any package pattern),
# or FUZZ=FuzzDecode (one target, in whichever package has it).
FUZZ ?= ./...
fuzz:
	@case "$(FUZZ)" in Fuzz*) pkgs=./...; only='$(FUZZ)';; *) pkgs='$(FUZZ)'; only=;; esac; \
	found=; \
	for pkg in $$($(GO) list $$pkgs); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			[ -z "$$only" ] || [ "$$f" = "$$only" ] || continue; found=1; \
			echo "fuzz $$pkg $$f for $(FUZZTIME)"; \
			$(GO) test -run XXX -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done; \
	[ -n "$$found" ] || { echo "no fuzz target matches FUZZ=$(FUZZ)"; exit 1; }

deps:
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		iproute2 nftables nmap hping3 netsniff-ng tcpdump zbar-tools procps psmisc coturn knockd \
		util-linux strace systemd lintian rpm groff-base man-db bash-completion fish zsh git make fail2ban
	$(GO) mod download
	$(GO) -C tools mod download

clean:
	rm -rf $(BIN) $(DIST)

# The README's first command (as root): three network namespaces, a
# protected service, tknockd and a knock with tknock, narrated step by step;
# removes everything it created when it ends or on Ctrl-C.
demo: build
	$(GO) run ./demo --bin $(BIN)

# The benchmarks (root, a few minutes): the hot path, the capture under a
# spoofed flood, knocks under flood, open latency, memory, and command to
# open against knockd (Debian's knockd, in deps), knocks under 10 % loss. Prints one table
# and writes it to bench/results/ (untracked) with the daemon's logs.
bench: build
	$(GO) run ./bench/cmd/knockbench --bin $(BIN) --go $(GO)
