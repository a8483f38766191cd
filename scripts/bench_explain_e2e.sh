#!/usr/bin/env bash
# End to end on one image, one process each: `explain --arch ARCH` versus a Python script that
# does the same with pytorch-grad-cam (scripts/explain_e2e.py): start, imports, weights, image,
# Grad-CAM, three JPEGs. Reports median wall time and median peak memory over REPEATS runs.
# Both load the same torchvision-layout weights (random, written here by torch.save).
# Usage: scripts/bench_explain_e2e.sh [arch] [image] [repeats]
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:-resnet18}; image=${2:-../shared/images/photos/elephant.jpeg}; repeats=${3:-5}
[ -f "$image" ] || { echo "no image at $image (pass one, or put ../shared beside the project)"; exit 1; }

venv=scripts/.venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import pytorch_grad_cam, torchvision" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q torch torchvision grad-cam
fi
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
"$venv/bin/python" -c "import torch, torchvision; torch.manual_seed(0); torch.save(torchvision.models.$arch().state_dict(), '$work/$arch.pth')"

cargo build -q -p explain
bin=target/debug/explain

# Prints "<seconds> <peak KiB>" for one run of the command.
measure() {
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null 2>&1
  cat "$work/time"
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

: >"$work/rust"; : >"$work/python"
for _ in $(seq "$repeats"); do
  measure "$bin" --arch "$arch" --weights "$work/$arch.pth" --image "$image" --out "$work/rust-out" >>"$work/rust"
  measure "$venv/bin/python" scripts/explain_e2e.py "$arch" "$work/$arch.pth" "$image" "$work/py-out" >>"$work/python"
done
for who in rust python; do
  s=$(cut -d' ' -f1 "$work/$who" | median); m=$(cut -d' ' -f2 "$work/$who" | median)
  eval "${who}_s=$s ${who}_m=$m"
  echo "$who: median wall ${s} s, median peak $((m / 1024)) MiB over $repeats runs"
done
python3 -c "print(f'explain is {$python_s/$rust_s:.1f}x faster end to end with {$rust_m/$python_m:.2f}x the memory ($arch, $(nproc) cores)')"
