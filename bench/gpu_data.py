"""horse2zebra as the GPU machine gets it: every photo of trainA/ trainB/ testA/ testB/ re-encoded as WebP, so the
data set travels inside the 64 MiB a device call carries beside the tracked tree (the JPEGs are 118 MB).

    python bench/gpu_data.py ../shared/data/horse2zebra .gpu/horse2zebra [--quality 85]

.gpu/ is in .git/info/exclude, so carry it by name (`carry: [".gpu"]`). Prints the folder's size and what the
re-encoding cost: the mean absolute difference from the JPEGs, in grey levels.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source")
    ap.add_argument("dest")
    ap.add_argument("--quality", type=int, default=85)
    args = ap.parse_args(argv)
    src, dest = Path(args.source), Path(args.dest)
    total, diffs = 0, []
    for split in ("trainA", "trainB", "testA", "testB"):
        (dest / split).mkdir(parents=True, exist_ok=True)
        for f in sorted((src / split).glob("*.jpg")):
            out = dest / split / (f.stem + ".webp")
            with Image.open(f) as im:
                im = im.convert("RGB")
                im.save(out, quality=args.quality, method=6)
                with Image.open(out) as back:
                    diffs.append(np.abs(np.asarray(back, np.int16) - np.asarray(im, np.int16)).mean())
            total += out.stat().st_size
    print(f"{dest}: {total / 2**20:.1f} MiB, quality {args.quality}; mean |difference| from the JPEGs "
          f"{np.mean(diffs):.2f} grey levels (worst photo {np.max(diffs):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
