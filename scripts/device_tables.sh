#!/usr/bin/env bash
# The GPU measurements of the README's "On a GPU" section, in one call of at most 8 minutes on a
# machine that can neither build nor download. `scripts/prepare_device.sh` prepares .gpu/ here
# (binaries built with CUDA, small data, pytorch-grad-cam's sources); the machine needs an
# NVIDIA driver, CUDA's NVRTC, and Python with PyTorch and torchvision for the comparison rows.
#
#   OUT=/tmp/gpu scripts/device_tables.sh      # $OUT/steps.txt and $OUT/results.tgz
#
# Every step has its own time limit, so one slow step cannot starve the others, and its log
# lands in results.tgz as soon as it ends (the call may be cut short); the most wanted steps
# come first. In order:
#   startup_*   the first `explain` of one image in a fresh process, with empty kernel caches
#               (cold) and again (warm), and on the CPU;
#   train_resnet20  `train` on CIFAR-10 JPEGs (ResNet-20, batch 128, 9,000 + 1,000 images,
#               3 epochs), from empty caches;
#   steps_*     training steps per second on data already on the GPU, burn and PyTorch, both
#               networks (examples/throughput, scripts/bench_train.py);
#   methods_*   time per image of every CAM method, ResNet-18, batch 16, this workspace in f32
#               and pytorch-grad-cam 1.5.7 (examples/methods_speed, scripts/bench_methods.py);
#   maps_*      all methods on 100 CIFAR images with ResNet-20 on the CPU and on the GPU in both
#               precisions; scripts/compare_maps.py gives the largest difference of cam.npy;
#   kernels     every convolution algorithm on each layer shape, against the CPU
#               (examples/gpu_kernels: ms and relative error), BatchNorm, Linear;
#   train_tutorial  the tutorial's CNN on cats vs dogs (batch 16, 1,600 + 400 photos, 2 epochs);
#   profile     cubecl's kernel profile of one ResNet-20 epoch (scripts/cubecl_profile.py);
#   methods_burn_tf32, cpu_steps  the methods in TF32; the CPU rows on this machine's cores.
set -uo pipefail
cd "$(dirname "$0")/.."
G=.gpu
OUT=${OUT:-/tmp/device-out}
RESULTS="$G/results"
mkdir -p "$OUT" "$G/bin" "$RESULTS"
tar -xJf "$G/bin.tar.xz" -C "$G/bin"
tar -xf "$G/cifar-train.tar" -C "$G"
tar -xf "$G/cats-dogs.tar" -C "$G"
export PATH="$PWD/$G/bin:$PATH"
# burn-cuda compiles its kernels with NVRTC at run time: let the loader find CUDA's libraries.
cuda_libs=$(ls -d /usr/local/cuda*/targets/x86_64-linux/lib /usr/local/cuda*/lib64 2>/dev/null | tr '\n' ':')
export LD_LIBRARY_PATH="$cuda_libs${LD_LIBRARY_PATH:-}"
export PYTHONPATH="$PWD/$G/py${PYTHONPATH:-:}"
export PYTHONUNBUFFERED=1
# A kernel cache of this run's own, empty at the start: the cold start-up is cold.
export GRADCAM_CACHE_DIR="$PWD/$G/kernel-cache"
rm -rf "$GRADCAM_CACHE_DIR" "$HOME/.nv/ComputeCache"

{
  date -u +"%Y-%m-%d %H:%M UTC"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  echo "cores: $(nproc)"
  python3 -c 'import torch, torchvision; print("torch", torch.__version__, "torchvision", torchvision.__version__)'
} 2>&1 | tee "$RESULTS/steps.txt"

# What has been measured so far, as the call's two files.
publish() {
  cp "$RESULTS/steps.txt" "$OUT/steps.txt"
  tar -czf "$OUT/results.tmp" -C "$G" results && mv "$OUT/results.tmp" "$OUT/results.tgz"
}

step() { # name, seconds, command...
  local name=$1 limit=$2; shift 2
  local start=$(date +%s%N)
  timeout "$limit" "$@" > "$RESULTS/$name.log" 2>&1
  local status=$?
  local ms=$((($(date +%s%N) - start) / 1000000))
  printf '%s: exit %d in %d.%03d s\n' "$name" "$status" $((ms / 1000)) $((ms % 1000)) |
    tee -a "$RESULTS/steps.txt"
  publish
}

W="$G/resnet20-12fca82f.th"
image=$(ls "$G"/cifar-train/cat/* | head -n 1)
step startup_cold 40 explain --arch resnet20 --weights "$W" --image "$image" --device cuda \
  --out "$G/start-cold"
step startup_warm 20 explain --arch resnet20 --weights "$W" --image "$image" --device cuda \
  --out "$G/start-warm"
step startup_cpu 15 explain --arch resnet20 --weights "$W" --image "$image" --device cpu \
  --out "$G/start-cpu"

# Training starts from empty caches too: its first epoch includes compiling every kernel.
rm -rf "$HOME/.nv/ComputeCache"
step train_resnet20 90 env GRADCAM_CACHE_DIR="$PWD/$G/kernel-cache-train" \
  train -c cifar_jpeg --data-dir "$G/cifar-train" --epochs 3 --device cuda \
  --out "$G/runs/resnet20" -q
cp "$G/runs/resnet20/metrics.csv" "$RESULTS/train_resnet20.csv" 2>/dev/null

step steps_burn 60 bash -c 'throughput resnet20 128 20 5 cuda tf32;
  throughput resnet20 128 20 3 cuda f32; throughput tutorial_cnn 16 50 5 cuda tf32'
step steps_torch 45 bash -c 'python3 scripts/bench_train.py resnet20 128 20 5 cuda;
  python3 scripts/bench_train.py tutorial_cnn 16 50 5 cuda'

step methods_burn_f32 60 methods_speed resnet18 16 5 cuda f32
step methods_torch 60 python3 scripts/bench_methods.py resnet18 16 5 cuda

maps=(explain --arch resnet20 --weights "$W" --data-dir "$G/cifar-train" --limit 100
  --method all --save-raw)
step maps_cpu 45 "${maps[@]}" --out "$G/maps-cpu" --device cpu
step maps_f32 30 "${maps[@]}" --out "$G/maps-f32" --device cuda --precision f32
step maps_tf32 30 "${maps[@]}" --out "$G/maps-tf32" --device cuda --precision tf32
step maps_compare 15 python3 scripts/compare_maps.py "$G/maps-cpu" "$G/maps-f32" "$G/maps-tf32"

step kernels 120 gpu_kernels cuda

step train_tutorial 45 train -c tutorial --data-dir "$G/cats-dogs" --epochs 2 \
  --device cuda --out "$G/runs/tutorial" -q
cp "$G/runs/tutorial/metrics.csv" "$RESULTS/train_tutorial.csv" 2>/dev/null

step profile 45 env CUBECL_DEBUG_LOG="$G/cubecl.log" CUBECL_DEBUG_OPTION=profile \
  train -c cifar_jpeg --data-dir "$G/cifar-train" --epochs 1 --device cuda \
  --out "$G/runs/profile" -q
step profile_summary 10 python3 scripts/cubecl_profile.py "$G/cubecl.log"

step methods_burn_tf32 45 methods_speed resnet18 16 5 cuda tf32
step cpu_steps 40 bash -c 'throughput resnet20 128 5 3 cpu;
  python3 scripts/bench_train.py resnet20 128 5 3 cpu'
cp "$G"/start-cold/*.json "$RESULTS/" 2>/dev/null
publish
