# tknock: port knocking with HMAC-derived, source-bound, time-windowed sequences.
#
#   make build     the binaries, static (CGO_ENABLED=0), into bin/
#   make test      installs missing test tools (as root), lint, cross builds of the client, every test
#   make lint      go vet and staticcheck
#   make fuzz      every fuzz target for FUZZTIME each
#   make deps      the Debian packages the tests use (needs root and apt-get)

# sudo's secure_path usually lacks Go's directory: add the default install's.
export PATH := $(PATH):/usr/local/go/bin
GO       ?= go
BIN      := bin
FUZZTIME ?= 60s
export CGO_ENABLED ?= 0

.PHONY: all build cross test tools unit lint fuzz deps clean demo bench

all: build

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

# Root tests (nftables, capture, end to end) skip without root and fail
# instead when CI=true.
unit:
	$(GO) test -count=1 -timeout 30m ./...

test: tools lint cross unit

# The programs the tests use; missing ones are installed when we can.
TOOLS := ip nft nmap hping3 trafgen tcpdump zbarimg
tools:
	@missing=$$(for t in $(TOOLS); do command -v $$t >/dev/null 2>&1 || echo $$t; done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing the test tools ($$missing missing)"; $(MAKE) deps; \
	else \
		echo "note: $$missing not installed: the tests that need them skip (run as root to install them with apt-get)"; \
	fi

fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$f for $(FUZZTIME)"; \
			$(GO) test -run XXX -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

deps:
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		iproute2 nftables nmap hping3 netsniff-ng tcpdump zbar-tools procps psmisc
	$(GO) mod download

clean:
	rm -rf $(BIN)

# The README's first command (as root): three network namespaces, a
# protected service, tknockd and a knock with tknock, narrated step by step;
# removes everything it created when it ends or on Ctrl-C.
demo: build
	$(GO) run ./demo --bin $(BIN)

# The benchmarks (root, a few minutes): the hot path, the capture under a
# spoofed flood, knocks under flood, open latency, memory. Prints one table
# and writes it to bench/results/ (untracked) with the daemon's logs.
bench: build
	$(GO) run ./bench/cmd/knockbench --bin $(BIN) --go $(GO)
