# vswitch — see README.md. Everything here runs as root (network namespaces).
GO       ?= go
BIN      ?= bin
PKGS     := ./...
# the default test run: unit + netns integration tests for both datapaths
TESTFLAGS ?= -count=1 -timeout 20m

.PHONY: all build test test-short demo bench lint deps clean man completion install uninstall deb

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
# more go build flags (make deb: -buildmode=pie -trimpath)
BUILDFLAGS ?=

build:
	CGO_ENABLED=0 $(GO) build $(BUILDFLAGS) -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/vswitchd ./cmd/vswctl

# ---- man pages, completion, install, the Debian package ----
# Generated files go to $(BUILD), never into the tree: they come from the
# programs' own help (internal/manpage), so they are rebuilt, not kept.
BUILD    ?= build
PREFIX   ?= /usr/local
BINDIR   ?= $(PREFIX)/bin
SBINDIR  ?= $(PREFIX)/sbin
DATADIR  ?= $(PREFIX)/share
MANDIR   ?= $(DATADIR)/man
DOCDIR   ?= $(DATADIR)/doc/vswitch
# systemd reads units from /usr/local/lib/systemd/system and /usr/lib/systemd/system
UNITDIR  ?= $(PREFIX)/lib/systemd/system
SYSCONFDIR ?= /etc
# libvirt (6.5 and later) runs every executable here after hooks/qemu
LIBVIRT_HOOKDIR ?= $(SYSCONFDIR)/libvirt/hooks/qemu.d
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
# Debian's zsh reads vendor-completions for packages, site-functions for /usr/local
ZSHCOMPDIR  ?= $(DATADIR)/zsh/$(if $(filter /usr,$(PREFIX)),vendor-completions,site-functions)
FISHCOMPDIR ?= $(DATADIR)/fish/vendor_completions.d
UNIT     := contrib/systemd/vswitchd.service
CONF     := contrib/systemd/vswitchd.conf
DOCS     := README.md $(sort $(wildcard docs/*))
INSTALL  ?= install

# man: vswctl's pages (one per command) and vswitchd(8), from the binaries'
# own help. VSWITCHD_SOCKET is unset so that the pages show the defaults.
man: build
	rm -rf $(BUILD)/man
	env -u VSWITCHD_SOCKET $(BIN)/vswctl __man $(BUILD)/man >/dev/null
	env -u VSWITCHD_SOCKET $(BIN)/vswitchd --man > $(BUILD)/man/vswitchd.8

completion: build
	mkdir -p $(BUILD)/completion
	$(BIN)/vswctl completion bash > $(BUILD)/completion/vswctl
	$(BIN)/vswctl completion zsh > $(BUILD)/completion/_vswctl
	$(BIN)/vswctl completion fish > $(BUILD)/completion/vswctl.fish

# install: PREFIX=/usr/local, DESTDIR for staging; vswitchd in SBINDIR, vswctl
# in BINDIR. The unit's and the hook's paths to the binaries are rewritten to
# where they are installed. Man pages are installed compressed (gzip -9n).
# The example configuration goes to /etc/vswitch/vswitchd.conf unless a file
# is there already (it is the operator's; uninstall leaves it too).
install: build man completion
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(DOCDIR) $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR) \
		$(DESTDIR)$(LIBVIRT_HOOKDIR)
	$(INSTALL) -m 0755 $(BIN)/vswitchd $(DESTDIR)$(SBINDIR)/vswitchd
	$(INSTALL) -m 0755 $(BIN)/vswctl $(DESTDIR)$(BINDIR)/vswctl
	for f in $(BUILD)/man/*.1 $(BUILD)/man/*.8; do \
		[ -e "$$f" ] || continue; s=$${f##*.}; \
		gzip -9n < "$$f" > $(DESTDIR)$(MANDIR)/man$$s/$${f##*/}.gz; chmod 0644 $(DESTDIR)$(MANDIR)/man$$s/$${f##*/}.gz; done
	$(INSTALL) -m 0644 $(BUILD)/completion/vswctl $(DESTDIR)$(BASHCOMPDIR)/vswctl
	$(INSTALL) -m 0644 $(BUILD)/completion/_vswctl $(DESTDIR)$(ZSHCOMPDIR)/_vswctl
	$(INSTALL) -m 0644 $(BUILD)/completion/vswctl.fish $(DESTDIR)$(FISHCOMPDIR)/vswctl.fish
	sed 's|@BINDIR@|$(BINDIR)|g' contrib/libvirt/qemu-hook.in > $(BUILD)/qemu-hook
	$(INSTALL) -m 0755 $(BUILD)/qemu-hook $(DESTDIR)$(LIBVIRT_HOOKDIR)/vswitch
	$(INSTALL) -m 0644 $(DOCS) $(DESTDIR)$(DOCDIR)/
	if [ -f $(UNIT) ]; then \
		$(INSTALL) -d $(DESTDIR)$(UNITDIR) && \
		sed -E -e 's|^(Exec[A-Za-z]*=[-@!+:]*)[^ ]*/vswitchd|\1$(SBINDIR)/vswitchd|' \
		       -e 's|^(Exec[A-Za-z]*=[-@!+:]*)[^ ]*/vswctl|\1$(BINDIR)/vswctl|' $(UNIT) > $(BUILD)/vswitchd.service && \
		$(INSTALL) -m 0644 $(BUILD)/vswitchd.service $(DESTDIR)$(UNITDIR)/vswitchd.service; \
	else echo "note: $(UNIT) not in this tree: no systemd unit installed"; fi
	if [ -f $(CONF) ] && [ ! -e $(DESTDIR)$(SYSCONFDIR)/vswitch/vswitchd.conf ]; then \
		$(INSTALL) -d $(DESTDIR)$(SYSCONFDIR)/vswitch && \
		$(INSTALL) -m 0644 $(CONF) $(DESTDIR)$(SYSCONFDIR)/vswitch/vswitchd.conf; fi

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/vswitchd $(DESTDIR)$(BINDIR)/vswctl $(DESTDIR)$(MANDIR)/man8/vswitchd.8.gz \
		$(DESTDIR)$(MANDIR)/man1/vswctl.1.gz $(DESTDIR)$(MANDIR)/man1/vswctl-*.1.gz \
		$(DESTDIR)$(BASHCOMPDIR)/vswctl $(DESTDIR)$(ZSHCOMPDIR)/_vswctl $(DESTDIR)$(FISHCOMPDIR)/vswctl.fish \
		$(DESTDIR)$(LIBVIRT_HOOKDIR)/vswitch $(DESTDIR)$(UNITDIR)/vswitchd.service
	rm -rf $(DESTDIR)$(DOCDIR)

# deb: vswitch_VERSION_ARCH.deb in $(BUILD) with dpkg-deb (no debhelper): make
# install into a staging directory with PREFIX=/usr (PIE, stripped), then
# internal/deb/mkdeb adds DEBIAN/ (control, conffiles, md5sums, maintainer
# scripts from contrib/debian), the copyright and changelog.Debian.gz.
# VERSION (git describe) becomes the Debian version (internal/deb.Version):
# no tag yet gives 0.0~gitYYYYMMDD.HHMMSS.HASH-1, tag v1.2 gives 1.2-1, 3 commits
# after it 1.2+gitYYYYMMDD.HHMMSS.HASH-1 (DEB_REVISION=2 for a rebuild); DEB_VERSION=...
# overrides.
DEBSTAGE   := $(BUILD)/deb/root
COMMITTIME ?= $(shell git log -1 --format=%ct 2>/dev/null)
DEB_VERSION ?=
DEB_REVISION ?= 1
deb:
	rm -rf $(DEBSTAGE)
	$(MAKE) --no-print-directory install DESTDIR=$(abspath $(DEBSTAGE)) PREFIX=/usr BIN=$(BUILD)/deb/bin \
		BUILDFLAGS='-buildmode=pie -trimpath' LDFLAGS='$(LDFLAGS) -s -w'
	$(GO) run ./internal/deb/mkdeb -root $(DEBSTAGE) -contrib contrib/debian -out $(BUILD) \
		-describe '$(VERSION)' -commit-time '$(COMMITTIME)' -version '$(DEB_VERSION)' -revision '$(DEB_REVISION)'

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
	rm -rf $(BIN) $(BUILD) bench-results.json
