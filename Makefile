# banger — the two commands that matter:
#   make run    set up this host, build, and boot the default image to run a command
#   make test   set up this host, build, lint, and run every test (real guests under QEMU)

CARGO        ?= cargo
AGENT_TARGET := x86_64-unknown-linux-gnu
RELEASE_DIR  := target/release
AGENT_BIN    := target/$(AGENT_TARGET)/agent/banger-agent
BANGER       := $(RELEASE_DIR)/banger

.PHONY: all deps build agent image run test lint unit bench clean openapi

all: build

deps:
	./scripts/install-deps

# The guest agent is a static binary (it runs as PID 1 in the guest). `--target` keeps
# the crt-static flag away from build scripts and proc-macros, which cannot be static.
agent:
	RUSTFLAGS='-C target-feature=+crt-static' $(CARGO) build --profile agent --target $(AGENT_TARGET) -p banger-agent

build: agent
	$(CARGO) build --release -p banger -p banger-fake-firecracker
	install -m 0755 $(AGENT_BIN) $(RELEASE_DIR)/banger-agent

# Build and register the default image (debian; mmdebstrap needs root) when it is missing.
image: build
	@if ! $(BANGER) image inspect debian >/dev/null 2>&1; then $(BANGER) image build debian; fi

run: deps build image
	$(BANGER) vm run --rm -- uname -a

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# End-to-end tests boot real guests; they use the release binaries built above.
test: deps lint build
	BANGER_BIN=$(abspath $(BANGER)) $(CARGO) test --workspace --no-fail-fast

# Regenerate docs/openapi.json from the daemon's code after an API change (a test fails
# while the checked-in copy differs).
openapi:
	BANGER_BLESS=1 $(CARGO) test -p banger-daemon --test openapi

bench: deps build
	BANGER_BIN=$(abspath $(BANGER)) $(CARGO) run --release -p banger-e2e --bin banger-bench

clean:
	$(CARGO) clean
