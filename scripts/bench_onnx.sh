#!/usr/bin/env bash
# Networks read from ONNX against the same networks built in (`--arch`), and against
# onnxruntime, on the same machine in the same run (medians of repeats; random weights, so no
# download). Rows: `explain` end to end on one photo and on a batch of 16 (wall time, ONNX over
# native: the goal is at most 1.1), and the forward pass's throughput at batch 16 (ours over
# onnxruntime's: the goal is at least 0.8).
# Usage: scripts/bench_onnx.sh [repeats] [networks…]   (default 3; resnet18 vit_b_16)
# Needs ../shared (or SHARED_DIR) for the photos.
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-3}; shift || true
networks=("$@"); [ ${#networks[@]} -gt 0 ] || networks=(resnet18 vit_b_16)
shared=${SHARED_DIR:-../shared}
[ -d "$shared/images/photos" ] || { echo "no shared folder at $shared (set SHARED_DIR)" >&2; exit 1; }
venv=scripts/.venv
"$venv/bin/python" -c "import torchvision, onnxruntime, onnx" 2>/dev/null || {
  python3 -m venv "$venv"; "$venv/bin/pip" install -q torch torchvision onnx onnxruntime onnxscript; }
cargo build -q -p explain -p model --bins --examples >&2
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
photos=("$shared"/images/photos/*)
batch=(); for i in $(seq 0 15); do batch+=("${photos[$((i % ${#photos[@]}))]}"); done
explain=target/debug/explain
wall() { /usr/bin/time -f "%e" -o "$work/t" "$@" >/dev/null 2>&1; cat "$work/t"; }

echo "| network | what | native \`--arch\` | ONNX | ONNX / native |"
echo "|---|---|---|---|---|"
for net in "${networks[@]}"; do
  "$venv/bin/python" - "$net" "$work" >&2 <<'PY'
import sys, torch, torchvision
name, out = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
torch.backends.mha.set_fastpath_enabled(False)  # else ViT exports a fused op ONNX lacks
model = torchvision.models.get_model(name, weights=None).eval()
torch.save(model.state_dict(), f"{out}/{name}.pth")
torch.onnx.export(model, (torch.randn(1, 3, 224, 224),), f"{out}/{name}.onnx", dynamo=False,
                  opset_version=17, input_names=["images"], output_names=["logits"],
                  dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}})
PY
  for what in one batch; do
    if [ $what = one ]; then images=("${photos[0]}"); else images=("${batch[@]}"); fi
    common=(--image "${images[@]}" --limit 16 --batch-size 16 --out "$work/out")
    : >"$work/native"; : >"$work/onnx"
    for _ in $(seq "$repeats"); do
      wall "$explain" --arch "$net" --weights "$work/$net.pth" "${common[@]}" >>"$work/native"
      wall "$explain" --weights "$work/$net.onnx" "${common[@]}" >>"$work/onnx"
    done
    n=$(median <"$work/native"); o=$(median <"$work/onnx")
    label=$([ $what = one ] && echo "explain 1 photo" || echo "explain 16 photos, batch 16")
    echo "| $net | $label | $n s | $o s | $(ratio "$o" "$n") |"
  done
  ours=$(target/debug/examples/onnx_speed "$work/$net.onnx" 16 "$repeats")
  theirs=$("$venv/bin/python" - "$work/$net.onnx" "$repeats" <<'PY'
import sys, time, numpy as np, onnxruntime
session = onnxruntime.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
x = np.random.default_rng(0).standard_normal((16, 3, 224, 224), dtype=np.float32)
session.run(None, {"images": x})
rates = []
for _ in range(int(sys.argv[2])):
    start = time.perf_counter(); session.run(None, {"images": x})
    rates.append(16 / (time.perf_counter() - start))
print(f"{sorted(rates)[len(rates) // 2]:.2f}")
PY
)
  rate=$(sed -E 's/img\/s ([0-9.]+).*/\1/' <<<"$ours")
  echo "| $net | forward, batch 16 (ours: $ours) | onnxruntime $theirs img/s | ours $rate img/s | $(ratio "$rate" "$theirs") of onnxruntime |"
done
