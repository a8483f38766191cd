#!/usr/bin/env bash
# Batch Grad-CAM throughput, this workspace (burn flex, CPU) vs pytorch-grad-cam, same network,
# batch and machine, one after the other. Usage: scripts/bench_gradcam.sh [batch] [repeats]
set -euo pipefail
cd "$(dirname "$0")/.."
batch=${1:-64}; repeats=${2:-5}

venv=scripts/.venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import pytorch_grad_cam" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q torch grad-cam
fi

cargo build -q -p explain --example gradcam_speed
burn=$(cargo run -q -p explain --example gradcam_speed -- "$batch" "$repeats" | tail -n1)
torch=$(cd scripts && ../$venv/bin/python bench_gradcam.py "$batch" "$repeats" | tail -n1)
echo "$burn"
echo "$torch"
b=$(sed -E 's/.*median=([0-9.]+).*/\1/' <<<"$burn")
t=$(sed -E 's/.*median=([0-9.]+).*/\1/' <<<"$torch")
python3 -c "print(f'burn/pytorch-grad-cam throughput ratio: {$b/$t:.2f} ({$b} vs {$t} img/s, $(nproc) cores)')"
