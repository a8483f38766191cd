#!/usr/bin/env bash
# The GPU kernels of crates/kernels/src/cube against the CPU's, on burn's WebGPU backend over
# Mesa's lavapipe, a Vulkan driver that runs on the CPU: the kernels' arithmetic is checked on a
# machine without a GPU. Installs lavapipe (Debian's mesa-vulkan-drivers) when it is missing and
# apt-get can; where it cannot, says so and skips.
set -euo pipefail
cd "$(dirname "$0")/.."

has_lavapipe() { compgen -G "/usr/share/vulkan/icd.d/lvp_icd*.json" > /dev/null; }
if ! has_lavapipe; then
  sudo=$([ "$(id -u)" = 0 ] || echo sudo)
  { $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends \
      mesa-vulkan-drivers libvulkan1; } > /tmp/lavapipe-install.log 2>&1 || true
fi
if ! has_lavapipe; then
  echo "WARNING: GPU kernel tests SKIPPED: no lavapipe Vulkan driver, and it could not be" \
       "installed (apt-get install mesa-vulkan-drivers; log in /tmp/lavapipe-install.log)"
  exit 0
fi
# wgpu asks for a runtime directory it does not need.
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
cargo test -p kernels --features wgpu --test cube_kernels --test kernel_cache
