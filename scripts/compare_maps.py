"""The largest difference between the maps of two or more `explain --save-raw` runs over the same
images: every cam.npy (ReLU, min-max, at the input's size) under the first folder against the
file of the same path under each other folder, overall and per method folder.

    python compare_maps.py REFERENCE OTHER...
"""
import pathlib
import sys
from collections import defaultdict

import numpy as np


def main():
    reference, *others = map(pathlib.Path, sys.argv[1:])
    files = sorted(reference.rglob("cam.npy"))
    if not files:
        sys.exit(f"no cam.npy under {reference}")
    for other in others:
        worst, per_method, missing = 0.0, defaultdict(float), 0
        for path in files:
            relative = path.relative_to(reference)
            twin = other / relative
            if not twin.exists():
                missing += 1
                continue
            diff = float(np.abs(np.load(path) - np.load(twin)).max())
            worst = max(worst, diff)
            per_method[relative.parts[0]] = max(per_method[relative.parts[0]], diff)
        methods = ", ".join(f"{m} {d:.1e}" for m, d in sorted(per_method.items()))
        print(f"{other} vs {reference}: {len(files) - missing} maps, max |diff| {worst:.2e}"
              f" (missing {missing}); per folder: {methods}")


if __name__ == "__main__":
    main()
