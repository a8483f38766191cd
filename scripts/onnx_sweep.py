"""Every torchvision classification network through both of torch's ONNX exporters, run by
onnxruntime and by this workspace (`crates/model/examples/onnx_logits.rs`), one table row per
network and exporter: whether it loads here, and the logits' largest difference relative to
onnxruntime's largest logit (the issue's bar: 1e-4).

    scripts/.venv/bin/python scripts/onnx_sweep.py [--max-params 150e6] [NAME...] > sweep.md

Seeded random weights (BatchNorm statistics randomised too, so that they matter), one
224×224 image, batch 1. Nothing is committed: the exports live in a temporary folder. The
networks above --max-params are listed as skipped (their exports take minutes and gigabytes
on two cores; pass a larger bound to include them)."""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
import torch
import torchvision

ROOT = Path(__file__).resolve().parent.parent
# torchvision's ViT otherwise traces to aten::_native_multi_head_attention, which the
# TorchScript exporter cannot write.
torch.backends.mha.set_fastpath_enabled(False)
SIZE = 224


def settle_batch_norm(model):
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)


def export(model, image, path, dynamo):
    kwargs = dict(input_names=["images"], output_names=["logits"])
    if dynamo:
        torch.onnx.export(model, (image,), path, dynamo=True, opset_version=18, **kwargs)
    else:
        torch.onnx.export(model, (image,), path, dynamo=False, opset_version=17, **kwargs)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: image.numpy()})[0]


def ours(path, image, folder):
    image_file, out_file = folder / "input.f32", folder / "logits.f32"
    image.numpy().astype("<f4").tofile(image_file)
    tool = ROOT / "target/debug/examples/onnx_logits"
    run = subprocess.run([tool, path, image_file, out_file], capture_output=True, text=True,
                         timeout=1800)
    if run.returncode != 0:
        reason = (run.stderr.strip().splitlines() or ["exit %d" % run.returncode])[-1]
        return None, reason.replace(str(path), path.name)
    return np.fromfile(out_file, dtype="<f4"), run.stdout.strip()


def sweep(name, folder):
    torch.manual_seed(sum(map(ord, name)))
    model = torchvision.models.get_model(name, weights=None).eval()
    settle_batch_norm(model)
    image = torch.randn(1, 3, SIZE, SIZE)
    for exporter, dynamo in [("script", False), ("dynamo", True)]:
        path = folder / f"{name}.{exporter}.onnx"
        try:
            with torch.no_grad():
                reference = export(model, image, path, dynamo).ravel()
        except Exception as e:  # an export that torch itself cannot make is not ours to run
            first = str(e).strip().splitlines()[0][:100] if str(e).strip() else type(e).__name__
            yield exporter, "export fails", first
            continue
        logits, note = ours(path, image, folder)
        if logits is None:
            yield exporter, "**refused**", note
        elif logits.shape != reference.shape:
            yield exporter, "**wrong shape**", f"{logits.shape} vs {reference.shape}"
        else:
            rel = float(np.abs(logits - reference).max() / max(np.abs(reference).max(), 1e-30))
            verdict = "ok" if rel <= 1e-4 else "**differs**"
            yield exporter, verdict, f"{rel:.1e} ({note})"
        for f in folder.iterdir():
            f.unlink()


def count_params(name):
    """Without allocating the weights where torchvision allows it (RegNet's builder does not)."""
    try:
        with torch.device("meta"):
            model = torchvision.models.get_model(name, weights=None)
    except NotImplementedError:
        model = torchvision.models.get_model(name, weights=None)
    return sum(p.numel() for p in model.parameters())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("names", nargs="*")
    parser.add_argument("--max-params", type=float, default=150e6)
    args = parser.parse_args()
    names = args.names or torchvision.models.list_models(module=torchvision.models)
    build = subprocess.run(["cargo", "build", "-q", "-p", "model", "--example", "onnx_logits"],
                           cwd=ROOT)
    if build.returncode != 0:
        sys.exit("cannot build the onnx_logits example")
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"onnxruntime {onnxruntime.__version__}; {SIZE}×{SIZE}, batch 1\n")
    print("| network | params | exporter | result | relative difference (our load, forward) |")
    print("|---|---|---|---|---|")
    for name in names:
        params = count_params(name)
        if params > args.max_params:
            print(f"| {name} | {params / 1e6:.0f} M | both | skipped | above --max-params |",
                  flush=True)
            continue
        start = time.time()
        with tempfile.TemporaryDirectory() as folder:
            for exporter, verdict, note in sweep(name, Path(folder)):
                print(f"| {name} | {params / 1e6:.0f} M | {exporter} | {verdict} | {note} |",
                      flush=True)
        print(f"{name}: {time.time() - start:.0f} s", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
