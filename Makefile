# vswitch — see README.md. Everything here runs as root (network namespaces).
GO       ?= go
BIN      ?= bin
PKGS     := ./...
# the default test run: unit + netns integration tests for both datapaths
TESTFLAGS ?= -count=1 -timeout 20m

.PHONY: all build test test-short demo bench lint deps clean

all: build

# Pure Go, statically linked: no cgo in the daemon (os/user and net use
# their Go resolvers), whether or not the machine has a C compiler.
# Stamped with `git describe`, the commit and the build date (internal/version);
# SOURCE_DATE_EPOCH (reproducible builds) fixes the date.
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse HEAD 2>/dev/null)
DATE     ?= $(shell date -u -d @$${SOURCE_DATE_EPOCH:-$$(date +%s)} +%Y-%m-%dT%H:%M:%SZ)
VPKG     := github.com/vswitch/vswitch/internal/version
LDFLAGS  ?= -X $(VPKG).version=$(VERSION) -X $(VPKG).commit=$(COMMIT) -X $(VPKG).date=$(DATE)

build:
	CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/vswitchd ./cmd/vswctl

# deps installs what the tests, the demo and the benchmark need on Debian.
deps:
	bash scripts/install-deps.sh

test: build
	$(GO) test $(TESTFLAGS) -p 2 $(PKGS)

test-short: build
	$(GO) test -short -count=1 $(PKGS)

demo: build
	$(GO) run ./test/demo -bin $(BIN)

bench: build
	WITH_BENCH=1 bash scripts/install-deps.sh
	$(GO) run ./test/bench/cmd/vsbench -vswitchd $(BIN)/vswitchd -vswctl $(BIN)/vswctl -json bench-results.json
	$(GO) test -run XXX -bench . -benchmem ./pkg/vlan ./pkg/datapath

# lint: what CI checks after the tests (.ci/run adds go mod tidy -diff).
lint:
	gofmt -l . | (! grep .)
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 $(PKGS)

clean:
	rm -rf $(BIN) bench-results.json
