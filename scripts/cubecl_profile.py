"""Summary of a cubecl profile log (`CUBECL_DEBUG_LOG=FILE CUBECL_DEBUG_OPTION=profile`): each
kernel's launches, total time and share of the profiled GPU time, largest first.

    python cubecl_profile.py FILE [TOP]
"""
import re
import sys
from collections import defaultdict

UNITS = {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}
LINE = re.compile(r"^\|\s*([0-9.]+)(ns|µs|us|ms|s)\s*\|\s*(.+?)\s*$")


def main():
    path, top = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 25
    total, count = defaultdict(float), defaultdict(int)
    with open(path, encoding="utf-8", errors="replace") as log:
        for line in log:
            match = LINE.match(line)
            if match:
                value, unit, name = match.groups()
                # Type parameters make every instantiation its own name: group by the kernel.
                kernel = re.split(r"[<{(]", name, maxsplit=1)[0].strip() or name
                total[kernel] += float(value) * UNITS[unit]
                count[kernel] += 1
    overall = sum(total.values())
    if not overall:
        sys.exit(f"no profiled kernels in {path}")
    print(f"{sum(count.values())} launches, {overall:.3f} s of GPU time")
    print("share\ttotal_s\tlaunches\tmean_us\tkernel")
    for kernel, seconds in sorted(total.items(), key=lambda kv: -kv[1])[:top]:
        n = count[kernel]
        print(f"{100 * seconds / overall:.1f}%\t{seconds:.3f}\t{n}\t{1e6 * seconds / n:.1f}\t{kernel}")


if __name__ == "__main__":
    main()
