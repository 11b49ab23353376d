#!/usr/bin/env bash
# Every benchmark in one run, and docs/benchmarks.md written from it: each figure next to its
# peer measured in the same run, the machine and versions in the header, and the scaling plots
# (SVG, made by crates/bench-report with plotters) in docs/plots/.
#
#   scripts/bench-report.sh            the full run (about 20-30 minutes on 2 cores), writes
#                                      docs/benchmarks.md and docs/plots/*.svg
#   scripts/bench-report.sh --quick    small sizes (a few minutes), a check of the whole chain;
#                                      writes target/bench-report/quick/benchmarks.md and its
#                                      plots, and leaves docs/ alone (add --docs to write them)
#   scripts/bench-report.sh --only "crypto tlv"   run only these benches; the others' sections
#                                      and figures keep what the last run of the mode had
#
# The benches are the `harness = false` bench binaries (crates/*/benches); each prints its
# markdown tables (kept in the document's section of the same name, between the markers
# <!-- generated:NAME --> and <!-- /generated:NAME -->) and, with BENCH_JSON set, appends one
# JSON line per figure (crates/bench-report/src/emit.rs). The prose between the sections is
# hand-written and left as it is.
#
# Needs pcscd with the vpcd readers and the two simulated serial readers
# (scripts/pcsc-env.sh start --serial 2, started here if pcscd is not running; slots are
# leased, so tests of others may run meanwhile), openssl for the crypto peer, and Xvfb for the
# kiosk (scripts/gui-env.sh install; without it the kiosk is skipped and said so). The ledger
# scaling of the full run fills a 10M-entry ledger and its raw peer in the temp directory
# (TMPDIR; about 7 GB, deleted afterwards); with less than 15 GB free there it stops at 1M.
set -euo pipefail

cd "$(dirname "$0")/.."

MODE=full
WRITE_DOCS=
ONLY=
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) MODE=quick ;;
    --docs) WRITE_DOCS=1 ;;
    --only)
        ONLY="$2"
        shift
        ;;
    -h | --help)
        sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "bench-report: unknown argument $1" >&2
        exit 2
        ;;
    esac
    shift
done
[ "$MODE" = full ] && WRITE_DOCS=1

OUT="target/bench-report/$MODE"
if [ -z "$ONLY" ]; then
    rm -rf "$OUT/outputs" "$OUT/logs"
fi
mkdir -p "$OUT/outputs" "$OUT/logs"
for name in $ONLY; do
    rm -f "$OUT/outputs/$name.txt" "$OUT/outputs/$name.skipped"
done
JSON="$PWD/$OUT/results.jsonl"
if [ -n "$ONLY" ] && [ -f "$JSON" ]; then
    # Keep the figures of the benches not run again (their sections keep their tables too).
    for name in $ONLY; do
        grep -v "^{\"bench\":\"$name\"," "$JSON" >"$JSON.tmp" || true
        mv "$JSON.tmp" "$JSON"
    done
else
    : >"$JSON"
fi

log() { echo "bench-report: $*" >&2; }

free_gb() { df -Pk "${TMPDIR:-/tmp}" | awk 'NR==2 { print int($4 / 1024 / 1024) }'; }

if [ "$MODE" = quick ]; then
    PCSC=(BENCH_ITERATIONS=500)
    TLV=(BENCH_SECONDS=0.05)
    HSM=(BENCH_SECONDS=0.5 BENCH_CLIENTS=1,4,16)
    SYNC=(BENCH_APPENDS=200 BENCH_ENTRIES=5000 BENCH_SCALE_ENTRIES=2000 BENCH_BATCHES=10,100,500
        BENCH_TERMINALS=1,2,4 BENCH_LEDGER_SIZES=1000,10000,100000 BENCH_SIZE_APPENDS=50)
    SERIAL=(BENCH_ITERATIONS=20)
    PBOC=(BENCH_RUNS=50 BENCH_STALL_RUNS=1)
    KIOSK=(BENCH_RUNS=5 BENCH_FRAMES=50)
else
    SIZES=1000,10000,100000,1000000,10000000
    if [ "$(free_gb)" -lt 15 ]; then
        SIZES=1000,10000,100000,1000000
        log "less than 15 GB free in ${TMPDIR:-/tmp}: the ledger scaling stops at 1M entries"
    fi
    PCSC=(BENCH_ITERATIONS=4000)
    TLV=(BENCH_SECONDS=0.3)
    HSM=(BENCH_SECONDS=3 BENCH_CLIENTS=1,2,4,8,16,32,64)
    SYNC=(BENCH_APPENDS=2000 BENCH_ENTRIES=100000 BENCH_SCALE_ENTRIES=20000
        BENCH_BATCHES=10,20,50,100,200,500,1000,2000 BENCH_TERMINALS=1,2,4,8,16
        BENCH_LEDGER_SIZES=$SIZES BENCH_SIZE_APPENDS=500)
    SERIAL=(BENCH_ITERATIONS=200)
    PBOC=(BENCH_RUNS=1000 BENCH_STALL_RUNS=3)
    KIOSK=(BENCH_RUNS=30 BENCH_FRAMES=300)
fi

wanted() { [ -z "$ONLY" ] || [[ " $ONLY " == *" $1 "* ]]; }

skip() {
    log "$1: skipped ($2)"
    echo "$2" >"$OUT/outputs/$1.skipped"
}

# run NAME PACKAGE [VAR=VALUE ...]: the bench's stdout into outputs/NAME.txt.
run() {
    local name="$1" pkg="$2"
    shift 2
    wanted "$name" || return 0
    # Built alone, as it runs: `cargo bench -p` of several packages at once unifies their
    # features and builds other artifacts than the run would use.
    log "$name: building"
    if ! cargo bench -q --no-run -p "$pkg" --bench "$name" >"$OUT/logs/$name.build.log" 2>&1; then
        skip "$name" "it did not build; log in $OUT/logs/$name.build.log"
        tail -5 "$OUT/logs/$name.build.log" >&2 || true
        return 0
    fi
    log "$name: running ($*)"
    local start=$SECONDS
    if env "$@" BENCH_JSON="$JSON" cargo bench -q -p "$pkg" --bench "$name" \
        >"$OUT/outputs/$name.txt" 2>"$OUT/logs/$name.log"; then
        log "$name: done in $((SECONDS - start)) s"
    else
        rm -f "$OUT/outputs/$name.txt"
        skip "$name" "it failed; log in $OUT/logs/$name.log"
        tail -5 "$OUT/logs/$name.log" >&2 || true
    fi
}

if ! scripts/pcsc-env.sh status >/dev/null 2>&1; then
    log "starting pcscd with vpcd and 2 serial readers"
    scripts/pcsc-env.sh start --serial 2 >&2
fi

run crypto card-core
run tlv card-core "${TLV[@]}"
run hsm_throughput hsm-sim "${HSM[@]}"
run pcsc_roundtrip reader-driver "${PCSC[@]}"
run pboc_purchase reader-driver "${PBOC[@]}"
run serial_roundtrip reader-driver "${SERIAL[@]}"
run sync_bench backend-sync "${SYNC[@]}"
if wanted kiosk; then
    if command -v Xvfb >/dev/null 2>&1; then
        run kiosk terminal-app "${KIOSK[@]}"
    else
        skip kiosk "no Xvfb here: scripts/gui-env.sh install"
    fi
fi

if [ -n "$WRITE_DOCS" ]; then
    DOC_OUT=docs/benchmarks.md
    PLOTS=docs/plots
else
    DOC_OUT="$OUT/benchmarks.md"
    PLOTS="$OUT/plots"
fi
cargo run -q -p bench-report -- --json "$JSON" --outputs "$OUT/outputs" \
    --doc docs/benchmarks.md --out "$DOC_OUT" --plots "$PLOTS" --plots-link plots --mode "$MODE" \
    ${ONLY:+--note "only $ONLY run again; the other benches' figures are from the run before"}
log "wrote $DOC_OUT and $PLOTS/ (raw: $JSON, outputs in $OUT/outputs)"
