#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a few seconds each and fails on any crash.
#
#   .ci/fuzz.sh [seconds-per-target]      (default 20)
#
# Installs cargo-fuzz (pinned) if it is missing, builds all targets once, then runs each starting
# from its committed seeds (fuzz/corpus/<target>) and the regression inputs (fuzz/regressions/
# <target>), writing new inputs to a scratch corpus so the committed one never changes. A crash
# leaves its reproducer in fuzz/artifacts/<target>/ and the script exits non-zero. The toolchain
# is stable: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its nightly-only flags. No sanitizer (the
# targets are safe Rust; `-s address` is for long sessions, see fuzz/README.md), so the build is
# smaller and runs are faster.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-20}
# Two targets at a time: libFuzzer runs one process per target, and CI has 2 cores.
jobs=${FUZZ_JOBS:-2}
cargo_fuzz_version=0.13.2

if ! cargo fuzz --version 2>/dev/null | grep -q "$cargo_fuzz_version"; then
    cargo install cargo-fuzz --version "$cargo_fuzz_version" --locked
fi

export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=never
start=$(date +%s)
echo "== fuzz: building all targets"
cargo fuzz build --sanitizer none
echo "== fuzz: built in $(( $(date +%s) - start ))s"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mapfile -t targets < <(cargo fuzz list)

# Runs one target; its log goes to $scratch/<target>.log, its verdict to the exit status.
run_one() {
    local target=$1 log="$scratch/$1.log"
    mkdir -p "$scratch/corpus/$target" "fuzz/artifacts/$target"
    local seeds=("fuzz/corpus/$target")
    [ -d "fuzz/regressions/$target" ] && seeds+=("fuzz/regressions/$target")
    # -timeout: one input taking over 10 s is a hang; -rss_limit_mb: runaway memory is a bug too.
    cargo fuzz run --sanitizer none "$target" "$scratch/corpus/$target" "${seeds[@]}" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1
}

failed=()
pids=()
names=()
wait_one() {
    local pid=${pids[0]} target=${names[0]}
    pids=("${pids[@]:1}")
    names=("${names[@]:1}")
    local log="$scratch/$target.log" status=0
    wait "$pid" || status=$?
    local execs
    execs=$(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
    if [ "$status" = 0 ]; then
        echo "== fuzz: $target ok, ${seconds}s, ${execs:-?} executions"
    else
        echo "== fuzz: $target FAILED (exit $status):"
        grep -A3 -m1 'panicked at' "$log" || tail -n 30 "$log"
        grep -A2 -m1 'Failing input' "$log" || true
        failed+=("$target")
    fi
}

for target in "${targets[@]}"; do
    run_one "$target" &
    pids+=($!)
    names+=("$target")
    if [ "${#pids[@]}" -ge "$jobs" ]; then
        wait_one
    fi
done
while [ "${#pids[@]}" -gt 0 ]; do
    wait_one
done

echo "== fuzz: ${#targets[@]} targets in $(( $(date +%s) - start ))s"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "== fuzz: crashes in: ${failed[*]} (reproducers in fuzz/artifacts/)"
    exit 1
fi
