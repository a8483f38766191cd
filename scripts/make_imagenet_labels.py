"""Writes crates/pretrained/src/imagenet_classes.txt: the 1,000 ImageNet-1k class names in
class-id order, from torchvision's model metadata (BSD-3-Clause).

    scripts/.venv/bin/pip install torchvision && scripts/.venv/bin/python scripts/make_imagenet_labels.py
"""
from pathlib import Path

from torchvision.models._meta import _IMAGENET_CATEGORIES

out = Path(__file__).resolve().parent.parent / "crates/pretrained/src/imagenet_classes.txt"
assert len(_IMAGENET_CATEGORIES) == 1000
out.write_text("".join(name + "\n" for name in _IMAGENET_CATEGORIES))
print(f"wrote {out}")
