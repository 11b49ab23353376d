#!/usr/bin/env bash
# Look for the project's secrets in clear in what the test suite left behind (issue 9, part 5;
# docs/reliability.md "Secrets in what the tests leave"): every fixture card's PINs (as a token
# and inside VERIFY/CHANGE PIN APDUs, PIN blocks, PIN keys), ID numbers, card numbers, PANs,
# names (UTF-8, GBK, hex), the fixtures' and the demo's keys, and the keys the tests generated.
#
#   scripts/leak-scan.sh [--since FILE] [ROOT...]
#
# Default roots: $SSCARD_ARTIFACTS (default /tmp/sscard-artifacts: the logs and traces the
# tests write on purpose, and cargo-test.log, the suite's whole output), $SSCARD_PCSC_DIR
# (pcscd's log, the simulated serial readers' logs), the kiosk's default state directories
# /tmp/sscard-kiosk-* (ledgers, receipts, the local backend's logs and databases) and
# PostgreSQL's data directory $SSCARD_PG_DIR (the central server's database in the tests).
# With --since only files modified after FILE are read. Key files (*.key, *.hex) under a
# backend/ directory hold keys on purpose: their content is looked for everywhere else, they
# are not findings. Programs (ELF) are skipped: they carry the fixtures compiled in.
#
# Exit status: 0 nothing found, 1 findings (listed as FILE:OFFSET: KIND (WHICH, FORM), never
# the secret), 2 error.
set -euo pipefail
cd "$(dirname "$0")/.."

since=()
if [ "${1:-}" = --since ]; then
    [ "$#" -ge 2 ] || { echo "leak-scan: --since needs a file" >&2; exit 2; }
    since=(--since "$2")
    shift 2
fi
roots=("$@")
if [ "${#roots[@]}" -eq 0 ]; then
    roots=("${SSCARD_ARTIFACTS:-/tmp/sscard-artifacts}" "${SSCARD_PCSC_DIR:-/tmp/sscard-pcsc}"
        "${SSCARD_PG_DIR:-/tmp/sscard-pg}")
    for d in /tmp/sscard-kiosk-*; do
        [ -d "$d" ] && roots+=("$d")
    done
fi

secrets=()
while IFS= read -r -d '' f; do
    secrets+=(--secret-file "$f")
done < <(find "${roots[@]}" -path '*/backend/*' -type f \( -name '*.key' -o -name '*.hex' \) \
    -print0 2>/dev/null || true)

cargo build -q --locked -p firmware-tests --bin leak-scan
exec target/debug/leak-scan "${since[@]}" "${secrets[@]}" "${roots[@]}"
