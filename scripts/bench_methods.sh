#!/usr/bin/env bash
# Time per image of every CAM method, this workspace vs pytorch-grad-cam, same torchvision
# network (random weights), same batch, same machine, one after the other.
# Usage: [BENCH_METHODS=a,b] scripts/bench_methods.sh [arch] [batch] [repeats]
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:-resnet18}; batch=${2:-1}; repeats=${3:-3}

venv=scripts/.venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import pytorch_grad_cam, torchvision" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q torch torchvision grad-cam
fi
cargo build -q -p explain --example methods_speed
burn=$(cargo run -q -p explain --example methods_speed -- "$arch" "$batch" "$repeats")
torch=$("$venv/bin/python" scripts/bench_methods.py "$arch" "$batch" "$repeats" 2>/dev/null)
echo "| method | burn ms/image | pytorch-grad-cam ms/image | speed ratio (torch/burn) |"
echo "|---|---|---|---|"
paste <(echo "$burn") <(echo "$torch") | while read -r _ method _ b _ _ _ t; do
  b=${b#median=}; t=${t#median=}
  python3 -c "print(f'| $method | $b | $t | {$t/$b:.2f} |')"
done
echo "($arch, batch $batch, $(nproc) cores)"
