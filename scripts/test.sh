#!/usr/bin/env bash
# The test command (README, .ci/run): everything the tests need, then every suite.
#   unit + property + conformance (both backends) + end-to-end (slixmpp, both backends),
#   the loom model of the mailbox wake protocol, and the fuzz corpus smoke run.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real XMPP client library for the interop tests.
if ! python3 -c 'import slixmpp' 2>/dev/null; then
    echo "installing slixmpp (pip) for the interop tests"
    python3 -m pip install --quiet 'slixmpp>=1.8'
fi
# slixmpp's XEP-0363 plugin uploads with aiohttp (the upload interop test).
if ! python3 -c 'import aiohttp' 2>/dev/null; then
    echo "installing aiohttp (pip) for the upload interop test"
    python3 -m pip install --quiet aiohttp
fi
# The WebSocket interop test's client (RFC 7395).
if ! python3 -c 'import websockets' 2>/dev/null; then
    echo "installing websockets (pip) for the WebSocket interop test"
    python3 -m pip install --quiet websockets
fi

# The browser test's npm packages (Converse.js, puppeteer-core), from the committed lock file.
if [[ ! -d engine/server/tests/browser/node_modules ]] && command -v npm >/dev/null; then
    echo "installing the browser test's npm packages (npm ci)"
    (cd engine/server/tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi

cargo build --release --bin rookery --bin rookery-load --bin rookery-tune
cargo test --workspace --release

# loom: exhaustive interleavings of the mailbox sleep/wake protocol (own target dir: other cfg).
RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom \
    cargo test -p rookery-mailbox --test loom --release

# Fuzz smoke: 10 s of libFuzzer per target (the framer; one client's input through the router
# after a scripted login, every byte sent checked by a strict XML parser), each from a copy of
# its committed corpus (the corpora are also replayed on stable by `cargo test`:
# engine/proto/tests/corpus.rs, engine/router/tests/wellformed.rs). Needs a nightly toolchain.
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    command -v cargo-fuzz >/dev/null || cargo install --quiet --locked cargo-fuzz
    for target in framer router_session; do
        corpus=$(mktemp -d)
        cp "fuzz/corpus/$target"/* "$corpus"/
        (cd fuzz && cargo +nightly fuzz run "$target" "$corpus" -- -max_total_time=10)
        rm -rf "$corpus"
    done
else
    echo "NOTE: no nightly toolchain: libFuzzer smoke not run (the corpus replay in cargo test did run)"
fi
