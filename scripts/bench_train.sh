#!/usr/bin/env bash
# Training throughput, burn (flex CPU backend) vs PyTorch, same network, batch and machine,
# in one run. Usage: scripts/bench_train.sh [tutorial_cnn|resnet20] [batch] [steps] [repeats]
# PyTorch comes from PyPI into scripts/.venv (created on first use).
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:-resnet20}; batch=${2:-64}; steps=${3:-10}; repeats=${4:-5}

venv=scripts/.venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q torch numpy
fi

cargo build -q -p train --example throughput
burn=$(cargo run -q -p train --example throughput -- "$arch" "$batch" "$steps" "$repeats" | tail -n1)
torch=$(cd scripts && ../$venv/bin/python bench_train.py "$arch" "$batch" "$steps" "$repeats" | tail -n1)
echo "$burn"
echo "$torch"
b=$(sed -E 's/.*median=([0-9.]+).*/\1/' <<<"$burn")
t=$(sed -E 's/.*median=([0-9.]+).*/\1/' <<<"$torch")
python3 -c "print(f'burn/torch throughput ratio: {$b/$t:.2f} ({$b} vs {$t} img/s, $(nproc) cores)')"
