#!/usr/bin/env bash
# The whole performance table of the README in one run: this workspace against PyTorch /
# pytorch-grad-cam on the same machine, the same networks, batches and images, one after the
# other, medians of repeated timings. Ratios are "higher is better for us": throughput ours /
# theirs, or for whole processes their wall time / ours; memory is peak resident set size.
# Needs ../shared (or SHARED_DIR) for the photos, the CIFAR JPEGs and ResNet-20's weights.
# Usage: scripts/bench.sh [repeats]   (prints a markdown table; details go to stderr)
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-3}
shared=${SHARED_DIR:-../shared}
[ -d "$shared/weights" ] || { echo "no shared folder at $shared (set SHARED_DIR)" >&2; exit 1; }

venv=scripts/.venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import pytorch_grad_cam, torchvision, cv2" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q torch torchvision grad-cam
fi
cargo build -q -p explain -p train --examples --bins >&2
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
rows=()

# Throughput rows: the twin benchmarks print "... ratio: R (OURS vs THEIRS img/s ...)" after
# running ours, then theirs. The machine's load drifts between the two halves, so each is run
# `repeats` times and the medians are reported.
throughput() { # title, script, args...
  local title=$1; shift
  : >"$work/rates"
  for _ in $(seq "$repeats"); do
    local output; output=$("$@"); echo "$output" >&2
    sed -E 's/.*\(([0-9.]+) vs ([0-9.]+) img\/s.*/\1 \2/' <<<"$(tail -n1 <<<"$output")" >>"$work/rates"
  done
  local ours theirs
  ours=$(cut -d' ' -f1 "$work/rates" | median); theirs=$(cut -d' ' -f2 "$work/rates" | median)
  rows+=("| $title | $ours img/s | $theirs img/s | $(ratio "$ours" "$theirs") |")
}
throughput "train ResNet-20 (CIFAR), batch 128" scripts/bench_train.sh resnet20 128 10 5
throughput "train the tutorial's SimpleCNN (128×128), batch 16" scripts/bench_train.sh tutorial_cnn 16 5 5
throughput "batch Grad-CAM, ResNet-20, batch 64 (computation)" scripts/bench_gradcam.sh 64 10

# Whole-process rows: wall time and peak memory of each command, alternated, medians.
measure() { /usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null 2>&1; cat "$work/time"; }
process_row() { # title, then two commands separated by "--"
  local title=$1; shift
  local ours=() theirs=() seen=0
  for arg in "$@"; do
    if [ "$arg" = "--" ]; then seen=1; elif [ $seen = 0 ]; then ours+=("$arg"); else theirs+=("$arg"); fi
  done
  : >"$work/ours"; : >"$work/theirs"
  for _ in $(seq "$repeats"); do
    measure "${ours[@]}" >>"$work/ours"
    measure "${theirs[@]}" >>"$work/theirs"
  done
  local os om ts tm
  os=$(cut -d' ' -f1 "$work/ours" | median); om=$(( $(cut -d' ' -f2 "$work/ours" | median | cut -d. -f1) / 1024 ))
  ts=$(cut -d' ' -f1 "$work/theirs" | median); tm=$(( $(cut -d' ' -f2 "$work/theirs" | median | cut -d. -f1) / 1024 ))
  echo "$title: ours $os s $om MiB, theirs $ts s $tm MiB" >&2
  rows+=("| $title | $os s, $om MiB | $ts s, $tm MiB | $(ratio "$ts" "$os")× faster, $(ratio "$om" "$tm")× the memory |")
}

explain=target/debug/explain
resnet20=$shared/weights/resnet20-cifar10/resnet20-12fca82f.th
cifar=()
for class in "$shared"/data/cifar10-jpeg/train/*/; do
  files=("$class"*.jpg); cifar+=("${files[@]:0:100}")  # the first 100 of each class
done
process_row "Grad-CAM of ${#cifar[@]} CIFAR images, figures included, pretrained ResNet-20" \
  "$explain" --arch resnet20 --weights "$resnet20" --batch-size 64 --out "$work/ours-cifar" --image "${cifar[@]}" -- \
  "$venv/bin/python" scripts/explain_folder.py "$resnet20" "$work/py-cifar" 64 "${cifar[@]}"

photo=$shared/images/photos/elephant.jpeg
for arch in resnet18 vgg19; do
  "$venv/bin/python" -c "import torch, torchvision; torch.manual_seed(0); torch.save(torchvision.models.$arch().state_dict(), '$work/$arch.pth')"
done
process_row "Score-CAM, ResNet-18, one 224×224 photo" \
  "$explain" --arch resnet18 --weights "$work/resnet18.pth" --method scorecam --image "$photo" --out "$work/ours-sc" -- \
  "$venv/bin/python" scripts/explain_e2e.py resnet18 "$work/resnet18.pth" "$photo" "$work/py-sc" scorecam
for arch in resnet18 vgg19; do
  process_row "one photo end to end (Grad-CAM, three JPEGs), $arch" \
    "$explain" --arch "$arch" --weights "$work/$arch.pth" --image "$photo" --out "$work/ours-$arch" -- \
    "$venv/bin/python" scripts/explain_e2e.py "$arch" "$work/$arch.pth" "$photo" "$work/py-$arch"
done

echo "| work | this workspace | PyTorch / pytorch-grad-cam | ratio (higher is better for us) |"
echo "|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "$(date -u +%Y-%m-%d), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), medians of $repeats runs (throughput: medians of $repeats runs of the twin scripts, each a median of its own repeats)"
