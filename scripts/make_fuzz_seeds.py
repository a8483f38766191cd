"""Seeds of the weight-file fuzz targets: a CIFAR ResNet-8 of width 4 (the model the targets
load, see crates/fuzzing) saved as PyTorch saves it today (zip), as before 1.6 (legacy pickle,
the format of the shared ResNet-20), and as safetensors, into fuzz/corpus/ (never committed:
scripts/fuzz.sh runs this when scripts/.venv has torch).

    scripts/.venv/bin/python scripts/make_fuzz_seeds.py
"""

import json
import struct
from pathlib import Path

import torch

from torch_models import CifarResNet

SEEDS = Path(__file__).resolve().parent.parent / "fuzz/corpus"

torch.manual_seed(0)
state = CifarResNet(depth=8, width=4, num_classes=10).state_dict()
(SEEDS / "torch_weights").mkdir(parents=True, exist_ok=True)
torch.save(state, SEEDS / "torch_weights/resnet8_w4.pth")
torch.save({"state_dict": state, "best_prec1": 0.0}, SEEDS / "torch_weights/resnet8_w4_legacy.th",
           _use_new_zipfile_serialization=False)

# safetensors by hand: an 8-byte header length, a JSON header, the raw little-endian data.
header, blobs, offset = {}, [], 0
for key, tensor in state.items():
    blob = tensor.contiguous().numpy().tobytes()
    dtype = {torch.float32: "F32", torch.int64: "I64"}[tensor.dtype]
    header[key] = {"dtype": dtype, "shape": list(tensor.shape), "data_offsets": [offset, offset + len(blob)]}
    blobs.append(blob)
    offset += len(blob)
text = json.dumps(header).encode()
(SEEDS / "safetensors_weights").mkdir(parents=True, exist_ok=True)
(SEEDS / "safetensors_weights/resnet8_w4.safetensors").write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))
for path in sorted(SEEDS.rglob("*")):
    if path.is_file():
        print(path.relative_to(SEEDS), path.stat().st_size)
