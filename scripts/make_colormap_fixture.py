"""OpenCV's own colour tables, for the `cam` crate's colormap tests.

    scripts/.venv/bin/pip install opencv-python-headless
    scripts/.venv/bin/python scripts/make_colormap_fixture.py

Writes crates/cam/tests/fixtures/opencv_colormaps.txt: per colormap a line `# NAME`, then 256
lines `r g b`, the colour OpenCV's applyColorMap gives the byte 0..255 (converted from BGR)."""

from pathlib import Path

import cv2
import numpy as np

OUT = Path(__file__).resolve().parent.parent / "crates/cam/tests/fixtures/opencv_colormaps.txt"

levels = np.arange(256, dtype=np.uint8)[:, None]
lines = []
for name, code in (("ocean", cv2.COLORMAP_OCEAN), ("jet", cv2.COLORMAP_JET)):
    rgb = cv2.applyColorMap(levels, code)[:, 0, ::-1]
    lines.append(f"# {name}")
    lines += [" ".join(str(v) for v in colour) for colour in rgb.tolist()]
OUT.write_text("\n".join(lines) + "\n")
print(OUT, cv2.__version__)
