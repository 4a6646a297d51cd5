"""`gan upscale`'s levers one at a time, in process, on one photo (issue 39): eager NCHW with 192 px tiles (the
eager script's loop), channels_last (the path before), the staged path, with freed memory kept (the default: what
gan's commands do), and --bf16; each with its pixels against the plain network's.

    python bench/upscale_levers.py                      # a horse2zebra test photo at 512x384, srresnet-x4
    python bench/upscale_levers.py --model srgan-x4 --size 1152x864
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gancli.data.tensors import to_tensor
from gancli.devices import keep_freed_memory
from gancli.use.model import load
from gancli.use.upscale import upscale_staged, upscale_tensor

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "horse2zebra"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="srresnet-x4")
    ap.add_argument("--size", default="512x384")
    args = ap.parse_args()
    w, h = map(int, args.size.split("x"))
    photo = Image.open(sorted((SHARED / "testA").glob("*.jpg"))[0]).convert("RGB").resize((w, h))
    x = to_tensor(photo, 3)
    model = load(args.model, device="cpu")
    G = model.generator

    def timed(fn):  # best of two: this machine's speed wanders by 20%
        best, out = float("inf"), None
        for _ in range(2):
            t0 = time.perf_counter()
            out = fn()
            best = min(best, time.perf_counter() - t0)
        return best, out

    G.to(memory_format=torch.contiguous_format)
    t_eager, plain = timed(lambda: upscale_tensor(G, x, 4, G.margin, 192))
    G.to(memory_format=torch.channels_last)
    t_cl, _ = timed(lambda: upscale_tensor(lambda t: G(t.contiguous(memory_format=torch.channels_last)), x, 4,
                                           G.margin, 192))
    t_staged, staged = timed(lambda: upscale_staged(model.staged(), x, memory_format=model.memory_format))
    keep_freed_memory()  # what gan's commands do (gancli.devices): for the rest of this process
    t_kept, kept = timed(lambda: upscale_staged(model.staged(), x, memory_format=model.memory_format))
    model.bf16 = True
    with model.autocast():
        t_bf16, bf16 = timed(lambda: upscale_staged(model.staged(), x, memory_format=model.memory_format,
                                                    dtype=model.input_dtype))

    def gap(a):
        d = np.abs(a.astype(int) - plain.astype(int))
        return f"max {d.max()} grey levels, {100 * (d > 0).mean():.4f}% of values differ"

    print(f"{args.model} on a {w}x{h} photo (x4: {4 * w}x{4 * h})")
    for name, t, out in (("eager NCHW, 192 px tiles", t_eager, None), ("+ channels_last", t_cl, None),
                         ("+ staged", t_staged, staged), ("+ freed memory kept (default)", t_kept, kept),
                         ("+ --bf16", t_bf16, bf16)):
        print(f"{name:28} {t:6.2f} s  {t_eager / t:5.2f}x" + (f"  {gap(out)}" if out is not None else ""))


if __name__ == "__main__":
    main()
