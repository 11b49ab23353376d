#!/usr/bin/env bash
# Build the cargo-fuzz targets of fuzz/ (card-core's TLV, ATR and APDU parsers) on the stable
# toolchain, and optionally run each of them for a while from the committed seeds.
#
#   scripts/fuzz-build.sh                      build every target
#   scripts/fuzz-build.sh --run 60             build, then fuzz each target for 60 s
#   scripts/fuzz-build.sh --run 60 tlv apdu    only these targets
#   scripts/fuzz-build.sh --sanitizer none     build without AddressSanitizer
#
# How this works on stable Rust: cargo-fuzz compiles with nightly-only flags
# (-Zsanitizer=address, and -C passes=sancov-module with --cfg fuzzing for libFuzzer's coverage
# instrumentation). RUSTC_BOOTSTRAP=1 makes the stable compiler accept -Z flags, and the
# AddressSanitizer runtime (librustc-stable_rt.asan.a) ships with stable's rust-std for
# x86_64-unknown-linux-gnu, so the default ASan build works as is (verified with Rust 1.95).
# card-core forbids unsafe code, so ASan mainly watches its dependencies; it roughly halves
# the executions per second. On a target whose rust-std has no ASan runtime, pass
# `--sanitizer none`: libFuzzer still finds panics (failed assertions), overflows and hangs.
#
# Builds are release builds with debug assertions (-O -a), so integer overflow panics too.
# Crashing inputs are saved under fuzz/artifacts/<target>/ (ignored by git); reproduce one with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run -O -a <target> fuzz/artifacts/<target>/<file>
# (from fuzz/). The corpus a run grows is thrown away; the seeds under fuzz/seeds/ are the
# committed starting points.
set -euo pipefail

usage() {
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

run_seconds=""
sanitizer="${FUZZ_SANITIZER:-address}"
targets=()
while [ "$#" -gt 0 ]; do
    case "$1" in
    --run)
        [ "$#" -ge 2 ] || usage
        run_seconds="$2"
        shift 2
        ;;
    --run=*)
        run_seconds="${1#--run=}"
        shift
        ;;
    --sanitizer)
        [ "$#" -ge 2 ] || usage
        sanitizer="$2"
        shift 2
        ;;
    --sanitizer=*)
        sanitizer="${1#--sanitizer=}"
        shift
        ;;
    -h | --help) usage ;;
    -*)
        echo "fuzz-build: unknown option $1" >&2
        usage
        ;;
    *)
        targets+=("$1")
        shift
        ;;
    esac
done
if [ -n "$run_seconds" ] && ! [[ "$run_seconds" =~ ^[1-9][0-9]*$ ]]; then
    echo "fuzz-build: --run needs a whole number of seconds, got '$run_seconds'" >&2
    exit 2
fi

cd "$(dirname "$0")/../fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz-build: cargo-fuzz not found, installing it (cargo install cargo-fuzz --locked)" >&2
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
flags=(-O -a --sanitizer "$sanitizer")

if [ "${#targets[@]}" -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi
[ "${#targets[@]}" -gt 0 ] || {
    echo "fuzz-build: no fuzz targets found" >&2
    exit 1
}

echo "fuzz-build: building ${targets[*]} (sanitizer: $sanitizer)" >&2
for t in "${targets[@]}"; do
    cargo fuzz build "${flags[@]}" "$t"
done
echo "fuzz-build: built ${targets[*]}" >&2

[ -n "$run_seconds" ] || exit 0

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failed=()
summary=()
for t in "${targets[@]}"; do
    corpus="$work/corpus-$t"
    mkdir -p "$corpus"
    if [ -d "seeds/$t" ]; then
        cp seeds/"$t"/* "$corpus"/
    fi
    log="$work/$t.log"
    echo "fuzz-build: fuzzing $t for ${run_seconds}s from $(find "$corpus" -type f | wc -l) seeds" >&2
    status=0
    # -timeout: an input taking more than 10 s is a hang; -print_final_stats for the summary.
    cargo fuzz run "${flags[@]}" "$t" "$corpus" -- \
        -max_total_time="$run_seconds" -timeout=10 -print_final_stats=1 >"$log" 2>&1 || status=$?
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)"
    rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)"
    cov="$(grep -oE 'cov: [0-9]+' "$log" | tail -n1 || true)"
    ft="$(grep -oE 'ft: [0-9]+' "$log" | tail -n1 || true)"
    if [ "$status" -ne 0 ]; then
        echo "fuzz-build: $t FAILED (exit $status); last lines of its log:" >&2
        tail -n 40 "$log" >&2
        failed+=("$t")
        summary+=("$t: FAILED, see fuzz/artifacts/$t/")
    else
        summary+=("$t: ok, ${runs:-?} runs, ${rate:-?} exec/s, ${cov:-cov: ?}, ${ft:-ft: ?}, corpus $(find "$corpus" -type f | wc -l) inputs")
    fi
done

printf 'fuzz-build: %s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz-build: crashes in: ${failed[*]}" >&2
    exit 1
fi
