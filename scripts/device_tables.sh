#!/usr/bin/env bash
# The CUDA run of issue 5's measurements, on a GPU machine that cannot build or download:
# release binaries built elsewhere with `--features cuda` and small data sets, all under .gpu/
# (git-ignored through .git/info/exclude), results under $OUT. Prepared on the build machine:
#
#   CUDARC_CUDA_VERSION=13000 cargo build --release --features explain/cuda -p train -p explain \
#     --bins --example methods_speed
#   tar -cJf .gpu/bin.tar.xz -C target/release train explain -C examples methods_speed
#   .gpu/cats-dogs/train/{cats,dogs}: ../shared's photos resized to 128×128 (JPEG quality 75),
#   .gpu/cifar/<class>: 30 JPEGs per class, .gpu/resnet20-12fca82f.th from ../shared,
#   .gpu/py: pytorch_grad_cam and ttach copied from scripts/.venv's site-packages.
#
#   1. train the tutorial's CNN on cats vs dogs (128×128 copies of ../shared), 15 epochs;
#   2. the method × metric table on 200 of its held-out photos;
#   3. the same table for the imported ResNet-20 on 200 CIFAR-10 JPEGs;
#   4. time per image of every method, this workspace vs pytorch-grad-cam, ResNet-18, CUDA.
#
# Each step has its own time limit so that one slow step cannot starve the others.
set -uo pipefail
G=.gpu
OUT=${OUT:-/tmp/device-out}
mkdir -p "$OUT" "$G/bin"
tar -xJf "$G/bin.tar.xz" -C "$G/bin"
export PATH="$PWD/$G/bin:$PATH"
# burn-cuda compiles its kernels with NVRTC at run time: let the loader find CUDA's libraries.
export LD_LIBRARY_PATH="$(ls -d /usr/local/cuda*/lib64 2>/dev/null | tr '\n' ':')${LD_LIBRARY_PATH:-}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/steps.txt"
echo "cores: $(nproc)" >> "$OUT/steps.txt"

step() { # name, seconds, command...
  local name=$1 limit=$2; shift 2
  local start=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  echo "$name: exit $? in $((SECONDS - start)) s" | tee -a "$OUT/steps.txt"
}

step smoke 45 explain --arch resnet20 --weights "$G/resnet20-12fca82f.th" \
  --image "$(ls "$G"/cifar/cat/* | head -n1)" --guided --device cuda --out "$G/smoke"
step train "${TRAIN_LIMIT:-200}" train -c cats_dogs --data-dir "$G/cats-dogs/train" \
  --device cuda --out "$G/runs/cats_dogs" -q
step table_b "${TABLE_B_LIMIT:-160}" explain --run "$G/runs/cats_dogs" --limit 200 \
  --method all --evaluate --device cuda --out "$G/table_b"
step table_c "${TABLE_C_LIMIT:-80}" explain --arch resnet20 --weights "$G/resnet20-12fca82f.th" \
  --data-dir "$G/cifar" --limit 200 --method all --evaluate --device cuda --out "$G/table_c"
step speed_burn "${SPEED_LIMIT:-35}" methods_speed resnet18 16 5 cuda
step speed_torch "${SPEED_LIMIT:-35}" env PYTHONPATH="$G/py" python3 scripts/bench_methods.py \
  resnet18 16 5 cuda

tar -czf "$OUT/results.tgz" "$G"/runs/cats_dogs/metrics.csv "$G"/table_b/evaluation.* \
  "$G"/table_c/evaluation.* "$G"/smoke 2>/dev/null
true
