# ampfs — run `make help` for the targets.
#
# The two commands a new machine needs (Debian, Go installed, as root):
#   make demo   # mount a local S3 server's bucket at ./.demo/mnt
#   make test   # every test, including real mounts against a real S3 server

SHELL := /usr/bin/env bash
.DEFAULT_GOAL := help

GO           ?= go
BIN          := $(CURDIR)/bin
# staticcheck is run at a pinned version, outside go.mod.
STATICCHECK  ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
TEST_TIMEOUT ?= 12m

.PHONY: help deps build test vet lint check-mounts demo clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_.\/-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

deps: ## install what is missing (fuse3 for fusermount3; needs root and apt-get)
	@scripts/deps.sh

build: ## build bin/ampfs
	$(GO) build -o bin/ampfs ./cmd/ampfs

bin/versitygw: tools/go.mod tools/go.sum ## build the S3 server pinned in tools/go.mod
	cd tools && $(GO) build -o ../bin/versitygw github.com/versity/versitygw/cmd/versitygw

# The integration tests mount a -race build of the binary, so a data race in
# the running file system fails them too.
test: deps build bin/versitygw vet lint ## vet, staticcheck, all tests with -race (unit, storetest, integration), then check-mounts
	$(GO) build -race -o bin/ampfs-race ./cmd/ampfs
	@status=0; \
	AMPFS_VERSITYGW=$(BIN)/versitygw AMPFS_BIN=$(BIN)/ampfs-race \
		$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./... || status=$$?; \
	$(MAKE) --no-print-directory check-mounts || status=1; \
	exit $$status

vet: ## gofmt (fails on unformatted files) and go vet
	@unformatted=$$(gofmt -l $$(find . -path './.*' -prune -o -name '*.go' -print)); \
	if [ -n "$$unformatted" ]; then echo "gofmt: these files need \`gofmt -w\`:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

lint: ## staticcheck
	$(GO) run $(STATICCHECK) ./...

check-mounts: ## fail if a test left a fuse.ampfs mount behind (under TMPDIR, default /tmp)
	@scripts/check-mounts.sh

demo: deps build bin/versitygw ## start versitygw on loopback and mount its bucket "demo" at ./.demo/mnt (Ctrl-C stops)
	@scripts/demo.sh

clean: ## remove bin/ (not .demo/, which holds the demo's data)
	rm -rf bin

# --- benchmark (bench/README.md): never part of `make test` ---
# bench/build.sh builds ampfs from the committed HEAD into .bench/bin, so the
# result names a revision and a rebuild of bin/ampfs during a run changes nothing.
BENCH_N    ?= 3
BENCH_ARGS ?=
BENCH_RUN   = .bench/bench -ampfs .bench/bin/ampfs -ampfs-rev "$$(cat .bench/ampfs.rev)"

.PHONY: bench bench-quick bench-deps bench-build

bench-deps: ## install s3fs, fio, fuse3, attr if missing and build rclone v1.76.0 into .bench/bin (for the bench only)
	@bench/deps.sh

bench-build: bin/versitygw
	@GO=$(GO) bench/build.sh

bench: bench-deps bench-build ## benchmark ampfs (HEAD) vs s3fs and rclone mount, full sizes, $(BENCH_N) runs (about 45 min; root)
	$(BENCH_RUN) -n $(BENCH_N) -out .bench/results.md $(BENCH_ARGS)

bench-quick: bench-deps bench-build ## the same with small sizes and one run (under 5 minutes; root)
	$(BENCH_RUN) -quick -n 1 -out .bench/results-quick.md $(BENCH_ARGS)

# --- install (as root): the binary, mount(8)'s helper link and the unit ---
PREFIX     ?= /usr/local
SBINDIR    ?= /sbin
SYSTEMDDIR ?= /etc/systemd/system

.PHONY: install

install: build ## install bin/ampfs to $(PREFIX)/bin, link $(SBINDIR)/mount.ampfs to it (mount -t ampfs, fstab), and the ampfs@.service unit
	install -D -m 0755 bin/ampfs $(DESTDIR)$(PREFIX)/bin/ampfs
	install -d $(DESTDIR)$(SBINDIR)
	ln -sfn $(PREFIX)/bin/ampfs $(DESTDIR)$(SBINDIR)/mount.ampfs
	install -d $(DESTDIR)$(SYSTEMDDIR)
	sed 's|/usr/local/bin/ampfs|$(PREFIX)/bin/ampfs|g' contrib/systemd/ampfs@.service > $(DESTDIR)$(SYSTEMDDIR)/ampfs@.service
	chmod 0644 $(DESTDIR)$(SYSTEMDDIR)/ampfs@.service
	@if [ -z "$(DESTDIR)" ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
