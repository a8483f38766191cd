#!/usr/bin/env bash
# Writes reproduction.html (to stdout) for a folder made by scripts/reproduce_tutorial.sh:
#   scripts/reproduction_page.sh OUT NETWORK_DESCRIPTION
set -euo pipefail
out="$1"
network="$2"

# One table row per epoch: the tutorial's log beside ours on its training images and held out;
# epochs this run did not train (scripts/reproduce_tutorial.sh --epochs) are dashes, not zeros.
rows() {
    paste -d, "$out/tutorial/simple_cnn_test_results.csv" "$out/simple_cnn_train_results.csv" \
        "$out/simple_cnn_heldout_results.csv" | awk -F, '
        function pair(loss, acc) {
            if (loss == "") return "<td>–</td><td>–</td>"
            return sprintf("<td>%.4f</td><td>%.1f%%</td>", loss, 100 * acc)
        }
        NR > 1 { printf "<tr><td>%d</td>%s%s%s</tr>\n", $1, pair($2, $3), pair($5, $6), pair($8, $9) }'
}

# Held-out photos: the first two of each class from summary.csv (its 10th column is the
# superimposed figure; the other two figures sit in sibling folders).
figures() {
    awk -F, 'NR > 1 && seen[$3]++ < 2 {
        sup = $10; orig = sup; heat = sup
        sub(/^superimposed\//, "originals/", orig); sub(/^superimposed\//, "heatmaps/", heat)
        printf "<tr><td>%s<br>true %s, predicted %s (p = %.3f)</td>", $1, $3, $4, $5
        printf "<td><img src=\"heatmaps/%s\"></td><td><img src=\"heatmaps/%s\"></td><td><img src=\"heatmaps/%s\"></td></tr>\n", orig, heat, sup
    }' "$out/heatmaps/summary.csv"
}

imagenet() {
    for photo in elephant shark; do
        ours=$(ls -d "$out"/imagenet/*_"$photo" | head -1)
        ours=${ours#"$out"/}
        printf '<tr><td>%s</td><td><img src="tutorial/vgg_results/%s_map.jpg"></td><td><img src="tutorial/vgg_results/%s_heatmap.jpg"></td>' "$photo" "$photo" "$photo"
        printf '<td><img src="%s/superimposed.jpg"></td><td><img src="%s/heatmap.jpg"></td></tr>\n' "$ours" "$ours"
    done
}

held_out=$(($(wc -l <"$out/heatmaps/summary.csv") - 1))
epochs=$(($(wc -l <"$out/simple_cnn_heldout_results.csv") - 1))
trained="15 epochs"
[ "$epochs" -eq 15 ] || trained="15 epochs; this run trained $epochs"
cat <<HTML
<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>The Grad-CAM tutorial, reproduced</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; vertical-align: middle; }
th { background: #f3f3f3; }
td:first-child { text-align: left; }
img { max-height: 220px; max-width: 260px; display: block; }
.note { color: #555; max-width: 60em; }
</style></head><body>
<h1>The Grad-CAM tutorial, reproduced</h1>
<p class="note">Made by <code>scripts/reproduce_tutorial.sh</code> on $(date -u +%Y-%m-%d) ($(nproc) cores,
$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | sed 's/^ //' || echo "unknown CPU")).
The tutorial's SimpleCNN with its recipe (<code>configs/tutorial.toml</code>: one sigmoid output, binary
cross-entropy, ImageNet normalisation, SGD at 0.01, batch 16, $trained), trained on the shared
cats-vs-dogs photos with a fifth held out.</p>

<h2>Loss and accuracy per epoch</h2>
<p class="note">The tutorial scored each epoch on its "test" folder, which was a copy of training
images (see ../shared/README.md): its column is a training-set figure. Ours are each epoch's
checkpoint scored again without augmentation, on the training images (comparable to the
tutorial's) and on held-out photos the model never saw.</p>
<table>
<tr><th rowspan="2">epoch</th><th colspan="2">tutorial (its training images)</th><th colspan="2">ours, training images</th><th colspan="2">ours, held-out photos</th></tr>
<tr><th>loss</th><th>acc</th><th>loss</th><th>acc</th><th>loss</th><th>acc</th></tr>
$(rows)
</table>

<h2>Grad-CAM of the SimpleCNN</h2>
<p class="note">As the tutorial computes it: the gradient of the sigmoid output (the "dog" probability,
whatever the prediction), channel weights averaged over the map, ReLU, divided by the maximum,
OpenCV's OCEAN colormap, overlay 0.4 · heatmap + photo at the photo's own size. The tutorial's
figure is of a photo of its test folder, not in the shared set; ours are held-out photos
(all $held_out are under <code>heatmaps/</code>, with a gallery in <code>heatmaps/index.html</code>).</p>
<table>
<tr><th>the tutorial's</th><th>original</th><th>heatmap</th><th>superimposed</th></tr>
<tr><td>its test photo</td><td><img src="tutorial/gradCAM_results/original_image.jpg"></td>
<td><img src="tutorial/gradCAM_results/heatmap.jpg"></td><td><img src="tutorial/gradCAM_results/superimposed_image.jpg"></td></tr>
<tr><th>ours</th><th>original</th><th>heatmap</th><th>superimposed</th></tr>
$(figures)
</table>

<h2>The elephant and the shark</h2>
<p class="note">The tutorial used VGG19 (ImageNet); here: $network, Grad-CAM of the predicted
class at the last convolutional layer, JET, the same overlay. The photos are the tutorial's own.</p>
<table>
<tr><th>photo</th><th>tutorial: overlay</th><th>tutorial: heatmap</th><th>ours: overlay</th><th>ours: heatmap</th></tr>
$(imagenet)
</table>
</body></html>
HTML
