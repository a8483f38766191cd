#!/usr/bin/env bash
# Fuzzes every parser of outside bytes for a set time and prints one row per target:
# executions, executions per second, crashes (panics, aborts, allocations past the bound).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET ...]      (default 60 s, every target)
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Targets live in
# fuzz/fuzz_targets, their entry points in crates/fuzzing. Inputs that crash land in
# fuzz/artifacts/<target>/: copy each into fuzz/regressions/<target>/ once fixed, and
# `cargo test` (tests/fuzz_regressions.rs) replays it from then on.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(cifar_batch torch_weights safetensors_weights train_config checkpoint image onnx_model)
fi

# Allocation bounds: 64 MiB (over 1,000 times the largest input, 64 KiB) for everything but
# images, whose documented bound is the decoder's 1 GiB (a small PNG may declare 16384² pixels).
malloc_limit() { [ "$1" = image ] && echo 1200 || echo 64; }

cargo +nightly fuzz build -s none --fuzz-dir fuzz >/dev/null
cargo run -q -p fuzzing --example write_seeds -- fuzz/corpus >/dev/null
# Zip and legacy-pickle PyTorch seeds need torch (scripts/.venv); without it the weight targets
# start from the safetensors seed alone.
if [ -x scripts/.venv/bin/python ]; then
    (cd scripts && .venv/bin/python make_fuzz_seeds.py >/dev/null) || echo "warning: no PyTorch seeds" >&2
fi

printf '| target | seconds | executions | per second | crashes | corpus |\n|---|---|---|---|---|---|\n'
for target in "${targets[@]}"; do
    corpus="fuzz/corpus/$target"
    artifacts="fuzz/artifacts/$target"
    mkdir -p "$corpus" "$artifacts"
    log="fuzz/artifacts/$target.log"
    # -fork keeps fuzzing past a crash, so one run counts them all; 1 job on 2 cores.
    cargo +nightly fuzz run -s none --fuzz-dir fuzz "$target" "$corpus" -- \
        -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 \
        -malloc_limit_mb="$(malloc_limit "$target")" -timeout=10 \
        -fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1 \
        -artifact_prefix="$artifacts/" -print_final_stats=1 >"$log" 2>&1 || true
    # Fork mode reports the running total as `#N:` on its status lines.
    executions=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#' || true)
    crashes=$(find "$artifacts" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) | wc -l)
    printf '| %s | %s | %s | %s | %s | %s |\n' "$target" "$seconds" "${executions:-0}" \
        "$(( ${executions:-0} / seconds ))" "$crashes" "$(ls "$corpus" | wc -l)"
done
