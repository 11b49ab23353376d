#!/usr/bin/env bash
# The PC/SC demo for technicians: pcscd with a virtual reader, the software card "张三" in it,
# and `cardctl` listing readers, reading the ATR and the masked identity through the real stack.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install Rust (https://rustup.rs) first" >&2
    exit 1
fi

scripts/pcsc-env.sh install
scripts/pcsc-env.sh start
# shellcheck disable=SC1091
source "${SSCARD_PCSC_DIR:-/tmp/sscard-pcsc}/env"
reader="${SSCARD_VPCD_READERS%%|*}"
port="${SSCARD_VPCD_PORTS%% *}"

cargo build --locked --release -p firmware-tests --bin virtual-card -p terminal-app --bin cardctl
fifo="$(mktemp -u)"
mkfifo "$fifo"
target/release/virtual-card --port "$port" --insert zhangsan <"$fifo" >/dev/null &
card_pid=$!
exec 3>"$fifo"
cleanup() {
    echo quit >&3 || true
    exec 3>&- || true
    wait "$card_pid" 2>/dev/null || true
    rm -f "$fifo"
    scripts/pcsc-env.sh stop >/dev/null || true
}
trap cleanup EXIT

# pcscd polls the virtual reader every 400 ms; wait until it sees the card.
for _ in $(seq 50); do
    if target/release/cardctl readers 2>/dev/null | grep -q "^$reader	card present"; then
        break
    fi
    sleep 0.2
done

echo "== readers"
target/release/cardctl readers
echo
echo "== ATR"
target/release/cardctl atr --reader "$reader"
echo
echo "== identity (masked; add --reveal to show it)"
target/release/cardctl read --reader "$reader" "$@"
