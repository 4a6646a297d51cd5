"""The speed goals of issue 14 in one run: `gan translate` (CycleGAN, 256 px) and `gan sample` (-n 10000) against an
eager fp32 baseline, `gan train` (DCGAN-MNIST, batch 64) against the plain reference loop; side by side, each of
gan's paths with its output difference from the fp32 baseline.

    python bench/speed.py                       # all three
    python bench/speed.py --only translate,sample

The baselines: translate and sample run the same network as a plain eager fp32 PyTorch module (NCHW); sample also
draws the same per-sample latents and writes the same 10,000-image grid, so its ratio is the whole command's work
after the model has loaded. gan's paths are what `gan translate` / `gan sample` run: the default (PyTorch fp32, with
the memory format gancli.devices prefers), ``--backend onnxruntime`` (its graph exported once per set of weights and
cached; the first run's export is shown apart) and ``--bf16``. Train is bench/train.py's comparison, and the same
`gan train` step under bf16 autocast (``--bf16``). Images/s are the best of ``--repeats``, baseline and gan
alternating; the ratio is the median of the back-to-back pairs' ratios, since a shared machine's load moves between
runs. The default path's translate row runs the baseline's own computation: its ratio shows the noise.
"""
from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import train as train_bench  # bench/train.py
from gancli.families.cyclegan import ResnetGenerator
from gancli.imageio import grid_image, save_image, to_uint8
from gancli.pretrained import GANModel, load


def timed(fns: dict, repeats: int) -> dict:
    """Seconds of each function, run in turn ``repeats`` times after one warm-up each: name -> list of times."""
    for fn in fns.values():
        fn()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return times


def difference(ours: torch.Tensor, ref: torch.Tensor) -> str:
    """Largest |difference| in [-1, 1] units, and the share of uint8 pixels that come out equal."""
    same = (to_uint8(ours) == to_uint8(ref)).mean()
    return f"max |diff| {float((ours - ref).abs().max()):.1e}, {100 * same:.3f}% of uint8 pixels equal"


def paths(model, direction=None) -> dict:
    """gan's ways to run a model: name -> a function that readies the model for it."""
    def torch_fp32():
        model.use_backend("torch", direction)
        model.bf16 = False

    def onnxruntime():
        model.use_backend("onnxruntime", direction)
        model.bf16 = False

    def bf16():
        model.use_backend("torch", direction)
        model.bf16 = True

    return {"default (torch fp32)": torch_fp32, "--backend onnxruntime": onnxruntime, "--bf16": bf16}


def compare(what: str, model, direction, baseline, ours, count: int, repeats: int) -> list:
    """One row per gan path: baseline and gan images/s (best of ``repeats``) and the ratio: the median of the
    back-to-back pairs' ratios, which a machine whose load moves disturbs least."""
    rows = []
    for name, ready in paths(model, direction).items():
        t0 = time.perf_counter()
        ready()
        setup = time.perf_counter() - t0
        s = timed({"baseline": baseline, "gan": ours}, repeats)
        ratio = float(np.median([b / g for b, g in zip(s["baseline"], s["gan"])]))
        note = difference(ours(), baseline()) + (f"; export {setup:.1f} s, first run only" if "onnx" in name else "")
        rows.append((what, name, count / min(s["baseline"]), count / min(s["gan"]), ratio, note))
    return rows


def translate(size: int, batches: list[int], repeats: int):
    torch.manual_seed(0)
    model = GANModel.from_config({"architecture": "cyclegan", "image_size": size, "channels": 3}, device="cpu")
    eager = ResnetGenerator(3, 64, 9).eval()
    eager.load_state_dict(model.generator.a2b.state_dict())
    rows = []
    for b in batches:
        x = torch.rand(b, 3, size, size, generator=torch.Generator().manual_seed(b)) * 2 - 1
        with torch.inference_mode():
            rows += compare(f"translate {size} px, batch {b}", model, "a2b", lambda: eager(x),
                            lambda: model.translate(x, "a2b"), b, repeats)
    return rows


def sample(n: int, repeats: int, name: str = "dcgan-mnist"):
    model = load(name, device="cpu")
    eager = copy.deepcopy(model.generator).to(memory_format=torch.contiguous_format).eval()
    out = Path(tempfile.mkdtemp())

    def baseline():
        z = model.latents_for(n, 0)
        with torch.inference_mode():
            images = torch.cat([eager(b) for b in z.split(256)])
        save_image(grid_image(images), out / "eager.png")
        return images

    def ours():
        images = torch.cat(list(model.generate(model.latents_for(n, 0), None, 256)))
        save_image(grid_image(images), out / "gan.png")
        return images

    return compare(f"sample {name} -n {n} (grid)", model, None, baseline, ours, n, repeats)


def train(steps: int, warmup: int, batch: int):
    images = train_bench.load_data(train_bench.DATA).images
    device = torch.device("cpu")
    ref = train_bench.reference(images, device, batch, steps, warmup)
    rows = []
    for name, bf16 in (("default (fp32)", False), ("--bf16", True)):
        ours = train_bench.ours(device, batch, steps, warmup, bf16=bf16)
        rows.append((f"train dcgan-mnist, batch {batch}", name, ref, ours, ours / ref,
                     "reference: the DCGAN example's loop, fp32" + ("; quality: see RESULTS.md" if bf16 else "")))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="translate,sample,train")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batches", default="1,4")
    ap.add_argument("-n", type=int, default=10_000)
    ap.add_argument("--train-steps", type=int, default=150)
    args = ap.parse_args()
    os.environ.setdefault("GAN_CACHE", tempfile.mkdtemp())  # a fresh cache: the export is timed
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs; images/s "
          f"(best of {args.repeats}); ratio: the median of {args.repeats} back-to-back pairs")
    print(f"{'what':32} {'gan path':22} {'baseline':>9} {'gan':>9} {'ratio':>6}  output vs the fp32 baseline")
    jobs = {"translate": lambda: translate(args.size, [int(b) for b in args.batches.split(",")], args.repeats),
            "sample": lambda: sample(args.n, args.repeats),
            "train": lambda: train(args.train_steps, 10, 64)}
    for key in args.only.split(","):
        for what, path, base, ours, ratio, note in jobs[key]():
            print(f"{what:32} {path:22} {base:9.1f} {ours:9.1f} {ratio:5.2f}x  {note}", flush=True)


if __name__ == "__main__":
    main()
