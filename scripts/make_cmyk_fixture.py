"""Writes crates/data/tests/fixtures/cmyk-red-4x4.jpg: a 4×4 CMYK JPEG of pure red, which the
image-folder reader must turn into RGB. Needs Pillow (pip install pillow)."""

from pathlib import Path

from PIL import Image

out = Path(__file__).resolve().parent.parent / "crates/data/tests/fixtures/cmyk-red-4x4.jpg"
Image.new("CMYK", (4, 4), (0, 255, 255, 0)).save(out, quality=95)
print(out, out.stat().st_size, "bytes")
