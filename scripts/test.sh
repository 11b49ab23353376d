#!/usr/bin/env bash
# The README's test command. On a fresh Debian machine with Rust installed it installs the
# Debian packages that are missing, starts pcscd with the project's virtual readers (no
# systemd needed), and runs every test of the workspace against them.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install Rust (https://rustup.rs) first" >&2
    exit 1
fi

scripts/pcsc-env.sh install
scripts/gui-env.sh install      # Xvfb, Mesa, xdotool: the kiosk's snapshot and window tests; Chromium: cardctl's report
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
    XDG_RUNTIME_DIR="$(scripts/gui-env.sh runtime-dir)"
    export XDG_RUNTIME_DIR
fi
scripts/pcsc-env.sh start
# shellcheck disable=SC1091
source "${SSCARD_PCSC_DIR:-/tmp/sscard-pcsc}/env"
export SSCARD_PCSC_DIR
scripts/postgres-env.sh start   # backend-sync's tests run against PostgreSQL too (idempotent)

# What the tests leave behind is scanned for secrets in clear afterwards (scripts/leak-scan.sh,
# docs/reliability.md): tests that keep logs and traces write them to SSCARD_ARTIFACTS, and the
# suite's output is kept there as cargo-test.log; only files newer than .started are read.
export SSCARD_ARTIFACTS="${SSCARD_ARTIFACTS:-/tmp/sscard-artifacts}"
mkdir -p "$SSCARD_ARTIFACTS" && touch "$SSCARD_ARTIFACTS/.started"

# The tests lease vpcd slots, so they may run in parallel; leave pcscd running afterwards only
# if asked (handy when iterating), otherwise stop it.
status=0
# terminal-app's tests/demo_backend.rs runs `kiosk --with-backend`, which starts these binaries
# of other packages from target/debug; built here even when "$@" narrows the test run.
cargo build --locked -p hsm-sim -p backend-sync --bins || status=$?
[ "$status" = 0 ] && { cargo test --workspace --locked "$@" 2>&1 | tee "$SSCARD_ARTIFACTS/cargo-test.log" || status=$?; }
[ "$status" = 0 ] && { scripts/leak-scan.sh --since "$SSCARD_ARTIFACTS/.started" || status=$?; }
if [ "${SSCARD_KEEP_PCSCD:-0}" != 1 ]; then
    scripts/pcsc-env.sh stop
fi
exit "$status"
