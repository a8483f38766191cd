#!/usr/bin/env bash
# Prepares .gpu/ (git-ignored) for scripts/device_tables.sh on a GPU machine that can neither
# build nor download: release binaries built here with CUDA, small data sets cut from ../shared,
# and pytorch-grad-cam's sources for the Python side of the comparison.
#
#   scripts/prepare_device.sh [--shared DIR]      # DIR defaults to ../shared
#
# Takes the release build's time (over 30 minutes from scratch on 2 cores, a few once built).
# What a device call carries stays under 64 MiB: name .gpu/bin.tar.xz, .gpu/cifar-train.tar,
# .gpu/cats-dogs.tar, .gpu/resnet20-12fca82f.th and .gpu/py (not .gpu/stage, the work folder).
# PYTHON names a Python with pip and Pillow (default: scripts/.venv's, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=../shared
while [ $# -gt 0 ]; do
  case $1 in
    --shared) SHARED=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[ -d "$SHARED/data" ] || { echo "no $SHARED/data: pass --shared DIR" >&2; exit 1; }
G=.gpu
mkdir -p "$G/stage"
if [ -z "${PYTHON:-}" ]; then
  PYTHON=python3
  [ -x scripts/.venv/bin/python ] && PYTHON=scripts/.venv/bin/python
fi

echo "== release binaries with CUDA"
CUDARC_CUDA_VERSION=${CUDARC_CUDA_VERSION:-13000} cargo build --release \
  --features train/cuda,explain/cuda,kernels/cuda -p train -p explain -p kernels \
  --bin train --bin explain --example gpu_kernels --example methods_speed --example throughput
rm -rf "$G/stage/bin" && mkdir -p "$G/stage/bin"
cp target/release/train target/release/explain "$G/stage/bin/"
cp target/release/examples/{gpu_kernels,methods_speed,throughput} "$G/stage/bin/"
strip "$G"/stage/bin/*
tar -cJf "$G/bin.tar.xz" -C "$G/stage/bin" .

echo "== data"
# 1,000 CIFAR-10 JPEGs per class: 9,000 training and 1,000 held-out images for cifar_jpeg.
rm -rf "$G/stage/cifar-train"
for class_dir in "$SHARED"/data/cifar10-jpeg/train/*/; do
  class=$(basename "$class_dir")
  mkdir -p "$G/stage/cifar-train/$class"
  files=("$class_dir"*.jpg)
  cp "${files[@]:0:1000}" "$G/stage/cifar-train/$class/"
done
tar -cf "$G/cifar-train.tar" -C "$G/stage" cifar-train
# 1,000 cats and 1,000 dogs at the tutorial's 128×128 (the loader resizes anyway; smaller files).
"$PYTHON" - "$SHARED" "$G/stage/cats-dogs" <<'EOF'
import os, sys
from PIL import Image
src, dst = sys.argv[1] + "/data/cats-vs-dogs/train", sys.argv[2]
for c in ("cats", "dogs"):
    os.makedirs(f"{dst}/{c}", exist_ok=True)
    for f in sorted(os.listdir(f"{src}/{c}"))[:1000]:
        Image.open(f"{src}/{c}/{f}").convert("RGB").resize((128, 128), Image.BILINEAR).save(
            f"{dst}/{c}/{f}", quality=75)
EOF
tar -cf "$G/cats-dogs.tar" -C "$G/stage" cats-dogs
cp "$SHARED/weights/resnet20-cifar10/resnet20-12fca82f.th" "$G/"

echo "== pytorch-grad-cam 1.5.7 and ttach, pure Python"
rm -rf "$G/py" "$G/stage/wheels" && mkdir -p "$G/py" "$G/stage/wheels"
"$PYTHON" -m pip download -q --no-deps grad-cam==1.5.7 ttach==0.0.3 -d "$G/stage/wheels"
tar -xzf "$G"/stage/wheels/grad_cam-1.5.7.tar.gz -C "$G/stage/wheels"
cp -r "$G"/stage/wheels/grad_cam-1.5.7/pytorch_grad_cam "$G/py/"
python3 -m zipfile -e "$G"/stage/wheels/ttach-0.0.3-py3-none-any.whl "$G/py"
rm -rf "$G"/py/*.dist-info
du -sh "$G"/*.tar* "$G"/*.th "$G/py"
