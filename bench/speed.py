"""The speed goals of issue 14 in one run: `gan translate` (CycleGAN, 256 px) and `gan sample` (-n 10000) against an
eager fp32 baseline, `gan train` (DCGAN-MNIST, batch 64) against the plain reference loop; side by side, each of
gan's paths with its output difference from the fp32 baseline.

    python bench/speed.py                       # all four
    python bench/speed.py --only translate,sample
    python bench/speed.py --only loop           # gan train's whole loop, eager and --compile (cuda_check's rows)

The baselines: translate and sample run the same network as a plain eager fp32 PyTorch module (NCHW); sample also
draws the same per-sample latents and writes the same 10,000-image grid, so its ratio is the whole command's work
after the model has loaded. gan's paths are what `gan translate` / `gan sample` run: the default (PyTorch fp32, with
the memory format gancli.devices prefers), ``--backend onnxruntime`` (its graph exported once per set of weights and
cached; the first run's export is shown apart) and ``--bf16``. Train is bench/train.py's comparison, and the same
`gan train` step under bf16 autocast (``--bf16``). Images/s are the best of ``--repeats``, baseline and gan
alternating; the ratio is the median of the back-to-back pairs' ratios, since a shared machine's load moves between
runs. The default path's translate row runs the baseline's own computation: its ratio shows the noise.

Last, the ceiling: each baseline's arithmetic per image (torch.utils.flop_counter: convolutions and matrix products,
with their gradients when training) against the CPU's measured rate for that dtype (the best of large convolutions
shaped like these networks' heaviest and a large matrix product, alone). The baseline's time over the time that
arithmetic needs at that rate is the most any path can gain without doing less arithmetic or using a faster dtype.
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
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from gancli.data.imageio import grid_image, save_image, to_uint8
from gancli.families.cyclegan import ResnetGenerator
from gancli.use import backends
from gancli.use.model import GANModel, load


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
        backends.use(model, "torch", direction)
        model.bf16 = False

    def onnxruntime():
        backends.use(model, "onnxruntime", direction)
        model.bf16 = False

    def bf16():
        backends.use(model, "torch", direction)
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


def flops(fn) -> float:
    """Floating-point operations of ``fn()`` as torch counts them (2 per multiply-add)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def cpu_rate(dtype: torch.dtype, repeats: int = 5) -> float:
    """The best GFLOP/s this CPU reaches in ``dtype`` on any of: CycleGAN's residual-block convolution (256 channels,
    64x64, batch 1), the DCGAN generator's 256->128 transposed convolution (7x7 -> 14x14, batch 256), the DCGAN
    discriminator's 64->128 convolution (batch 64), each in NHWC and NCHW, and a 2048x2048 matrix product."""
    g = torch.Generator().manual_seed(0)

    def r(*shape):
        return torch.randn(*shape, generator=g).to(dtype)

    cl = torch.channels_last
    work = []
    for fmt in (cl, torch.contiguous_format):
        x, w = r(1, 256, 66, 66).contiguous(memory_format=fmt), r(256, 256, 3, 3).contiguous(memory_format=fmt)
        work.append(lambda x=x, w=w: F.conv2d(x, w))
        x, w = r(256, 256, 7, 7).contiguous(memory_format=fmt), r(256, 128, 4, 4).contiguous(memory_format=fmt)
        work.append(lambda x=x, w=w: F.conv_transpose2d(x, w, stride=2, padding=1))
        x, w = r(64, 64, 14, 14).contiguous(memory_format=fmt), r(128, 64, 4, 4).contiguous(memory_format=fmt)
        work.append(lambda x=x, w=w: F.conv2d(x, w, stride=2, padding=1))
    a, b = r(2048, 2048), r(2048, 2048)
    work.append(lambda: a @ b)
    best = 0.0
    with torch.inference_mode():
        for fn in work:
            n = flops(fn)
            fn()
            for _ in range(repeats):
                t0 = time.perf_counter()
                fn()
                best = max(best, n / (time.perf_counter() - t0) / 1e9)
    return best


def ceiling(what: str, gflop_per_image: float, baseline_ips: float, rates: dict) -> str:
    used = gflop_per_image * baseline_ips
    return (f"{what:32} {gflop_per_image:8.3f} GFLOP/image  baseline {used:6.1f} GFLOP/s = "
            f"{100 * used / rates['fp32']:3.0f}% of fp32's rate: fp32 ceiling {rates['fp32'] / used:4.2f}x, "
            f"bf16 ceiling {rates['bf16'] / used:4.2f}x")


def translate(size: int, batches: list[int], repeats: int):
    torch.manual_seed(0)
    model = GANModel.from_config({"architecture": "cyclegan", "image_size": size, "channels": 3}, device="cpu")
    eager = ResnetGenerator(3, 64, 9).eval()
    eager.load_state_dict(model.generator.a2b.state_dict())
    rows, work = [], []
    for b in batches:
        x = torch.rand(b, 3, size, size, generator=torch.Generator().manual_seed(b)) * 2 - 1
        with torch.inference_mode():
            rows += compare(f"translate {size} px, batch {b}", model, "a2b", lambda: eager(x),
                            lambda: model.translate(x, "a2b"), b, repeats)
            work.append((f"translate {size} px, batch {b}", flops(lambda: eager(x)) / b / 1e9))
    return rows, work


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

    what = f"sample {name} -n {n} (grid)"
    with torch.inference_mode():
        per_image = flops(lambda: eager(model.latents_for(256, 0))) / 256 / 1e9
    return compare(what, model, None, baseline, ours, n, repeats), [(what, per_image)]


def train(steps: int, warmup: int, batch: int, repeats: int):
    """Rounds of reference, gan fp32 and gan --bf16, back to back; images/s the best, ratios the median per round."""
    images = train_bench.load_data(train_bench.DATA).images
    device = torch.device("cpu")
    runs = {"reference": lambda: train_bench.reference(images, device, batch, steps, warmup),
            "default (fp32)": lambda: train_bench.ours(device, batch, steps, warmup, bf16=False),
            "--bf16": lambda: train_bench.ours(device, batch, steps, warmup, bf16=True)}
    ips = {k: [] for k in runs}
    for _ in range(repeats):
        for k, run in runs.items():
            ips[k].append(run())
    what, rows = f"train dcgan-mnist, batch {batch}", []
    for name in ("default (fp32)", "--bf16"):
        ratio = float(np.median([o / r for o, r in zip(ips[name], ips["reference"])]))
        rows.append((what, name, max(ips["reference"]), max(ips[name]), ratio,
                     f"reference: the DCGAN example's loop, fp32; ratio: median of {repeats} rounds"
                     + ("; quality: see RESULTS.md" if "bf16" in name else "")))
    step = train_bench.reference_step(device, batch)
    real = torch.rand(batch, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return rows, [(what, flops(lambda: step(real)) / batch / 1e9)]


def loop(steps: int, repeats: int, cyclegan_batches: list[int]):
    """bench/cuda_check.py's training rows on the CPU: `gan train`'s whole loop, default (eager) and --compile, against
    the CycleGAN reference implementation's update and the DCGAN example's loop."""
    import cuda_check  # bench/cuda_check.py

    device = torch.device("cpu")
    rows, work, notes = [], [], []
    for r, w, n in (cuda_check.cyclegan_rows(device, 128, 64, 9, cyclegan_batches, steps, repeats),
                    cuda_check.dcgan_rows(device, 150, 10, 64, repeats)):
        rows += [(what, path, ref, gan, ratio, note) for what, path, ref, gan, note, ratio in r]
        work += [(what, gflop) for what, gflop, *_ in w]
        notes += n
    for n in notes:
        print(n, flush=True)
    return rows, work


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="translate,sample,train,loop")
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
            "train": lambda: train(args.train_steps, 10, 64, max(1, args.repeats // 2)),
            "loop": lambda: loop(5, max(1, args.repeats // 2), [1])}
    work, best = [], {}
    for key in args.only.split(","):
        rows, counted = jobs[key]()
        for what, path, base, ours, ratio, note in rows:
            print(f"{what:32} {path:22} {base:9.1f} {ours:9.1f} {ratio:5.2f}x  {note}", flush=True)
            best[what] = max(best.get(what, 0.0), base)
        work += counted
    rates = {"fp32": cpu_rate(torch.float32), "bf16": cpu_rate(torch.bfloat16)}
    print(f"\nceiling: the CPU's measured rate {rates['fp32']:.0f} GFLOP/s in fp32, {rates['bf16']:.0f} in bf16; "
          "the baselines' arithmetic at their best images/s above")
    for what, gflop in work:
        print(ceiling(what, gflop, best[what], rates), flush=True)


if __name__ == "__main__":
    main()
