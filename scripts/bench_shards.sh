#!/usr/bin/env bash
# Images per second of `explain` as 1, 2, 3 and 4 shards run side by side on this machine
# (then merged) against one process: ResNet-20 (CIFAR-10, pretrained) on CIFAR-10 photos.
# Usage: scripts/bench_shards.sh [shared dir] [images] [method] [repeats]
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${1:-../shared}; images=${2:-2000}; method=${3:-gradcam}; repeats=${4:-3}
weights=$shared/weights/resnet20-cifar10/resnet20-12fca82f.th
photos=$shared/data/cifar10-jpeg/train
if [ ! -f "$weights" ] || [ ! -d "$photos" ]; then
  echo "skipped: $shared has no ResNet-20 weights or CIFAR-10 photos (pass the shared folder)" >&2
  exit 0
fi
cargo build -q --release -p explain
bin=target/release/explain
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
job=(--arch resnet20 --weights "$weights" --data-dir "$photos" --limit "$images" --method "$method")

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

echo "| processes | seconds (median of $repeats) | images/s | against one process |"
echo "|---|---|---|---|"
base=""
for n in 1 2 3 4; do
  times=()
  for _ in $(seq "$repeats"); do
    rm -rf "$work"/*
    start=$(date +%s.%N)
    if [ "$n" = 1 ]; then
      "$bin" "${job[@]}" --out "$work/one" >/dev/null
    else
      for i in $(seq 0 $((n - 1))); do
        "$bin" "${job[@]}" --shard "$i/$n" --out "$work/shard$i" >/dev/null &
      done
      wait
      "$bin" merge "$work/merged" "$work"/shard* >/dev/null
    fi
    times+=("$(echo "$(date +%s.%N) - $start" | bc)")
  done
  t=$(printf '%s\n' "${times[@]}" | median)
  base=${base:-$t}
  python3 -c "print(f'| $n | {$t:.2f} | {$images/$t:.0f} | {$base/$t:.2f}× |')"
done
echo "($images images, --method $method, $(nproc) cores, $(date -u +%Y-%m-%d))"
