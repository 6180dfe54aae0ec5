# banger — the two commands that matter:
#   make run    set up this host, build, and boot the default image to run a command
#   make test   set up this host, build, lint, and run every test (real guests under QEMU)

CARGO        ?= cargo

# The suite builds every crate once, from scratch on a new machine: incremental caches
# would only add (~2.5 GB of) files nothing reads again. CARGO_INCREMENTAL=1 to keep them.
export CARGO_INCREMENTAL ?= 0
AGENT_TARGET := x86_64-unknown-linux-gnu
RELEASE_DIR  := target/release
AGENT_BIN    := target/$(AGENT_TARGET)/agent/banger-agent
BANGER       := $(RELEASE_DIR)/banger

.PHONY: all deps build agent image run test lint unit bench clean openapi install uninstall fuzz check-disk

# `make install` layout (DESTDIR for packaging): the CLI in bin/, the guest agent where
# banger looks for it (../lib/banger/ beside bin/), a man page per subcommand, and
# bash/zsh/fish completions where those shells look by default.
PREFIX       ?= /usr/local
DESTDIR      ?=
BINDIR       := $(DESTDIR)$(PREFIX)/bin
LIBDIR       := $(DESTDIR)$(PREFIX)/lib/banger
MANDIR       := $(DESTDIR)$(PREFIX)/share/man/man1
BASHCOMPDIR  := $(DESTDIR)$(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR   := $(DESTDIR)$(PREFIX)/share/zsh/site-functions
FISHCOMPDIR  := $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d

all: build

# The Rust toolchain first (it says how to get one), then the host packages.
deps:
	./scripts/check-rust
	./scripts/install-deps

# The guest agent is a static binary (it runs as PID 1 in the guest). `--target` keeps
# the crt-static flag away from build scripts and proc-macros, which cannot be static.
agent:
	RUSTFLAGS='-C target-feature=+crt-static' $(CARGO) build --profile agent --target $(AGENT_TARGET) -p banger-agent

build: agent
	$(CARGO) build --release -p banger -p banger-fake-firecracker
	install -m 0755 $(AGENT_BIN) $(RELEASE_DIR)/banger-agent

# Build and register the default image (debian) when it is missing.
image: build
	@if ! $(BANGER) image inspect debian >/dev/null 2>&1; then $(BANGER) image build debian; fi

run: deps build image
	$(BANGER) vm run --rm -- uname -a

# Installs what `make build` built; it does not build (so `sudo make install` needs no
# Rust toolchain for root). Man pages and completions come from the installed banger.
# PREFIX=$$HOME/.local installs for one user without sudo.
install:
	@test -x $(BANGER) -a -x $(RELEASE_DIR)/banger-agent || { echo "make install: $(BANGER) or $(RELEASE_DIR)/banger-agent is missing: run \`make build\` first" >&2; exit 1; }
	install -d $(BINDIR) $(LIBDIR) $(MANDIR) $(BASHCOMPDIR) $(ZSHCOMPDIR) $(FISHCOMPDIR)
	install -m 0755 $(BANGER) $(BINDIR)/banger
	install -m 0755 $(RELEASE_DIR)/banger-agent $(LIBDIR)/banger-agent
	$(BINDIR)/banger man --dir $(MANDIR)
	$(BINDIR)/banger completions bash > $(BASHCOMPDIR)/banger
	$(BINDIR)/banger completions zsh > $(ZSHCOMPDIR)/_banger
	$(BINDIR)/banger completions fish > $(FISHCOMPDIR)/banger.fish
	chmod 0644 $(MANDIR)/banger.1 $(MANDIR)/banger-*.1 $(BASHCOMPDIR)/banger $(ZSHCOMPDIR)/_banger $(FISHCOMPDIR)/banger.fish

uninstall:
	rm -f $(BINDIR)/banger $(LIBDIR)/banger-agent $(MANDIR)/banger.1 $(MANDIR)/banger-*.1
	rm -f $(BASHCOMPDIR)/banger $(ZSHCOMPDIR)/_banger $(FISHCOMPDIR)/banger.fish
	-rmdir $(LIBDIR) 2>/dev/null

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Warns when the disk has less room than a clean `make test` takes.
check-disk:
	@./scripts/check-disk

# End-to-end tests boot real guests; they use the release binaries built above.
# The log is kept in target/test.log; the slowest test binaries are listed at the end.
test: check-disk deps lint build
	@mkdir -p target
	BANGER_BIN=$(abspath $(BANGER)) bash -c 'set -o pipefail; $(CARGO) test --workspace --no-fail-fast 2>&1 | tee target/test.log'; \
	rc=$$?; ./scripts/test-times target/test.log; exit $$rc

# Regenerate docs/openapi.json from the daemon's code after an API change (a test fails
# while the checked-in copy differs).
openapi:
	BANGER_BLESS=1 $(CARGO) test -p banger-daemon --test openapi

# Every benchmark, or those named in BENCH (e.g. `make bench BENCH="oci boot"`).
# BANGER_BENCH_OCI_SAMPLES=N: interleaved samples of each side of the OCI import bench (default 3).
# BANGER_BENCH_SSH_RUNS=N: interleaved pairs of the ssh bench (default 5); BANGER_BENCH_SSH_VCPUS=N: --vcpu N on both sides.
BENCH ?=
bench: deps build
	BANGER_BIN=$(abspath $(BANGER)) $(CARGO) run --release -p banger-e2e --bin banger-bench -- $(BENCH)

# Fuzz each target for FUZZ_SECONDS: coverage-guided with cargo-fuzz when a nightly toolchain
# and cargo-fuzz are installed (new inputs land in fuzz/corpus/TARGET; a crash in
# fuzz/artifacts/TARGET fails the run), otherwise the stable mutation loop over the corpora.
# `make test` replays the checked-in corpora (crates/fuzz-targets/tests/corpora.rs).
FUZZ_SECONDS ?= 30
FUZZ_TARGETS := agent_stream agent_host api_request config catalog deb oci_layer

fuzz:
	@if $(CARGO) +nightly fuzz --version >/dev/null 2>&1; then \
		for t in $(FUZZ_TARGETS); do \
			$(CARGO) +nightly fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=1024 -timeout=10 || exit 1; \
		done; \
	else \
		echo "cargo-fuzz on nightly not found: running the stable mutation loop (no coverage feedback)"; \
		$(CARGO) run --release -p banger-fuzz-targets --bin banger-fuzz-stable -- run --seconds $(FUZZ_SECONDS); \
	fi

clean:
	$(CARGO) clean
