#!/usr/bin/env bash
# The Grad-CAM tutorial, reproduced in one command: its SimpleCNN trained with its exact recipe
# (configs/tutorial.toml) on ../shared/data/cats-vs-dogs, every epoch's checkpoint scored again
# into the tutorial's `epoch,loss,acc` log, the held-out photos explained in its layout and
# colours, its elephant and shark explained with an ImageNet network, and one page,
# reproduction.html, that puts all of it beside the tutorial's own results.
#
#   scripts/reproduce_tutorial.sh [--device cpu|cuda] [--shared DIR] [--out DIR] [--vgg19 FILE]
#                                 [--epochs N]
#
#   --device   where to train and explain [cpu]; cuda needs a GPU (the build adds --features cuda)
#   --shared   the shared material [../shared]
#   --out      where everything goes [runs/tutorial-reproduction]
#   --vgg19    torchvision's VGG19 weights (vgg19-dcbb9e9d.pth), to explain the elephant and the
#              shark with the tutorial's own network; EfficientNet-Lite0 (shipped) otherwise
#   --epochs   train this many epochs instead of the tutorial's 15 (a quick check of the chain)
#
# Interrupted, it picks up where it stopped: training resumes from its last checkpoint.
# On the reference CPU (2 cores) training takes about 50 minutes, the rest a few. Also
# written: TensorBoard scalars of the training in OUT/tensorboard, and, where Chromium is
# installed, screenshots of reproduction.html and the run's report.html in OUT/screenshots.
set -euo pipefail
cd "$(dirname "$0")/.."

device=cpu
shared=../shared
out=runs/tutorial-reproduction
vgg19=""
epochs=()
while [ $# -gt 0 ]; do
    case "$1" in
        --device) device="$2"; shift 2 ;;
        --shared) shared="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --vgg19) vgg19="$2"; shift 2 ;;
        --epochs) epochs=(--epochs "$2"); shift 2 ;;
        -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

photos="$shared/data/cats-vs-dogs/train"
tutorial="$shared/images/tutorial"
for needed in "$photos" "$tutorial/simple_cnn_test_results.csv" "$shared/images/photos/elephant.jpeg"; do
    if [ ! -e "$needed" ]; then
        echo "error: $needed is missing: the reproduction needs the shared material (--shared DIR)" >&2
        exit 1
    fi
done

features=()
[ "$device" = cpu ] || features=(--features train/cuda,explain/cuda)
echo "== building (release)"
cargo build -q --release -p train -p explain "${features[@]}"
bin=target/release
run="$out/run"
mkdir -p "$out"

echo "== 1. training the tutorial's SimpleCNN (configs/tutorial.toml) → $run"
common=(--out "$run" --data-dir "$photos" --device "$device" --tensorboard "$out/tensorboard" -q "${epochs[@]}")
if [ -f "$run/config.toml" ]; then
    "$bin/train" --resume "${common[@]}" | tee -a "$out/train.log"
else
    "$bin/train" --config tutorial "${common[@]}" | tee "$out/train.log"
fi

echo "== 2. every epoch's checkpoint scored again"
"$bin/train" --rescore --out "$run" --data-dir "$photos" --device "$device" | tee "$out/rescore.log"
# The tutorial's own columns: epoch as a float, mean loss, accuracy.
awk -F, 'NR == 1 { print "epoch,loss,acc"; next } { printf "%d.0,%s,%s\n", $1, $4, $5 }' \
    "$run/rescored.csv" >"$out/simple_cnn_train_results.csv"
awk -F, 'NR == 1 { print "epoch,loss,acc"; next } { printf "%d.0,%s,%s\n", $1, $2, $3 }' \
    "$run/rescored.csv" >"$out/simple_cnn_heldout_results.csv"

echo "== 3. the held-out photos explained the tutorial's way"
"$bin/explain" --run "$run" --weights last --split val --limit all --data-dir "$photos" --device "$device" \
    --target tutorial --normalize max --colormap ocean --naming tutorial \
    --out "$out/heatmaps" >"$out/explain.log"
tail -n 3 "$out/explain.log"

echo "== 4. the elephant and the shark"
if [ -n "$vgg19" ]; then
    arch=(--arch vgg19 --weights "$vgg19")
    network="VGG19 (the tutorial's network)"
else
    arch=(--arch efficientnet_lite0 --weights "$shared/weights/efficientnet-lite0/efficientnet-lite0-57934424.pth")
    network="EfficientNet-Lite0 (in place of VGG19, whose weights are not shipped)"
fi
"$bin/explain" "${arch[@]}" --image "$shared/images/photos/elephant.jpeg" "$shared/images/photos/shark.jpeg" \
    --target tutorial --normalize max --colormap jet --device "$device" --out "$out/imagenet" | tee "$out/imagenet.log"

echo "== 5. reproduction.html"
mkdir -p "$out/tutorial"
cp -r "$tutorial/gradCAM_results" "$tutorial/vgg_results" "$tutorial/simple_cnn_test_results.csv" "$out/tutorial/"
scripts/reproduction_page.sh "$out" "$network" >"$out/reproduction.html"
echo "wrote $out/reproduction.html"

echo "== 6. the pages as a browser shows them"
if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then
    scripts/screenshot_pages.sh "$out/screenshots" "$out/reproduction.html" "$run/report.html" \
        "$out/heatmaps/index.html"
else
    echo "no chromium: screenshots skipped (apt-get install chromium)"
fi
