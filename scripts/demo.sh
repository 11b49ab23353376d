#!/usr/bin/env bash
# The README's main command: the citizen kiosk on its embedded demo (fictional cards
# personalised by an in-memory hsm-sim, an in-process reader with a panel to insert them, a
# local ledger). With a display it opens the kiosk full screen (pass --windowed for a window,
# --english to start in English). Without one it runs the same journey in text and says how to
# see the window. Extra arguments go to the kiosk. With --with-backend the kiosk also starts a
# local hsm-sim, central-server and sync-agent (built here too) and its payments sync to them.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install Rust (https://rustup.rs) first" >&2
    exit 1
fi

scripts/gui-env.sh install
cargo build --locked --release -p terminal-app --bin kiosk
for arg in "$@"; do
    if [ "$arg" = --with-backend ]; then
        # The kiosk finds them beside itself, in target/release.
        cargo build --locked --release -p hsm-sim -p backend-sync --bins
        break
    fi
done

if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
    XDG_RUNTIME_DIR="$(scripts/gui-env.sh runtime-dir)"
    export XDG_RUNTIME_DIR
fi

if [ -n "${DISPLAY:-}" ] || [ -n "${WAYLAND_DISPLAY:-}" ]; then
    exec target/release/kiosk "$@"
fi

echo "No display here (DISPLAY and WAYLAND_DISPLAY are unset): the kiosk's journey in text."
echo
target/release/kiosk --headless "$@"
cat <<'MSG'

To see the window: run scripts/demo.sh on a desktop, or on this machine
  xvfb-run -s '-screen 0 1366x800x24' target/release/kiosk --windowed
and look at it over VNC; screenshots of each screen are in docs/images/.
MSG
