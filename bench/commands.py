"""Every inference command, whole process, against a plain eager fp32 script (bench/eager.py) on the same weights
and inputs, run side by side: `gan sample`, `gan translate`, `gan upscale` (a 1 MP and a 12 MP photo, fp32 and
--bf16) and `gan classify`. Each row: seconds of each (best of --repeats, the two alternating; the 12 MP rows: gan best of --repeats, eager once, the CPU's rates measured again just before), the ratio, and the
arithmetic per second against the CPU's measured fp32 and bf16 rates (bench/speed.py's cpu_rate).

The arithmetic is the baseline's useful work (torch's flop counter on the network, untiled, scaled to the inputs),
so a path that does less work for the same pixels (the staged upscale's smaller overlaps) shows a higher rate.

    python bench/commands.py                    # every row (the 12 MP pair takes about 6 minutes)
    python bench/commands.py --only upscale-1mp,sample
    python bench/commands.py --device cuda      # bench/cuda_check.py's rows on a GPU machine
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = ROOT.parent / "shared" / "data"


def photo(folder: Path, name: str, width: int, height: int) -> Path:
    """A real horse2zebra test photo resampled to ``width`` x ``height`` (a phone photo's size), as a JPEG."""
    sources = sorted((SHARED / "horse2zebra" / "testA").glob("*.jpg"))
    image = Image.open(sources[0]).convert("RGB").resize((width, height), Image.Resampling.BICUBIC)
    path = folder / name
    image.save(path, quality=92)
    return path


def inputs(folder: Path) -> dict:
    photos = folder / "photos"
    photos.mkdir(exist_ok=True)
    for i, src in enumerate(sorted((SHARED / "horse2zebra").glob("test[AB]/*.jpg"))):
        Image.open(src).save(photos / f"{i:03d}.jpg", quality=92)
    digits = folder / "digits"
    digits.mkdir(exist_ok=True)
    from gancli.data.reading import find_idx, read_idx
    images = read_idx(find_idx(SHARED / "mnist", "t10k-images-idx3-ubyte"))
    for i, im in enumerate(images):
        Image.fromarray(im).save(digits / f"{i:04d}.png")
    return {"1mp": photo(folder, "1mp.jpg", 1152, 864), "12mp": photo(folder, "12mp.jpg", 4000, 3000),
            "photos": photos, "digits": digits}


def rows(folder: Path, device: str) -> dict:
    """name -> (gan's command, the eager script's arguments, GFLOP of the useful work)."""
    ins = inputs(folder)
    out = folder / "out"
    out.mkdir(exist_ok=True)
    dev = ["--device", device]
    mp1, mp12 = (Image.open(ins[k]).size for k in ("1mp", "12mp"))
    sr = gflop_per_pixel("srresnet-x4")
    return {
        "sample": (["sample", "dcgan-mnist", "-n", "10000", "-o", out / "grid.png", *dev],
                   ["sample", "dcgan-mnist", "10000", out / "grid-eager.png"], 10000 * gflop_per_image("dcgan-mnist")),
        "translate": (["translate", "discogan-bags2shoes", ins["photos"], "--outdir", out / "tr", *dev],
                      ["translate", "discogan-bags2shoes", ins["photos"], out / "tr-eager"],
                      len(list(ins["photos"].iterdir())) * gflop_per_image("discogan-bags2shoes")),
        "upscale-1mp": (["upscale", "srresnet-x4", ins["1mp"], "-o", out / "1mp-x4.jpg", *dev],
                        ["upscale", "srresnet-x4", ins["1mp"], out / "1mp-eager.jpg"], sr * mp1[0] * mp1[1]),
        "upscale-1mp-bf16": (["upscale", "srresnet-x4", ins["1mp"], "-o", out / "1mp-x4b.jpg", "--bf16", *dev],
                             ["upscale", "srresnet-x4", ins["1mp"], out / "1mp-eager.jpg"], sr * mp1[0] * mp1[1]),
        "upscale-12mp": (["upscale", "srresnet-x4", ins["12mp"], "-o", out / "12mp-x4.jpg", *dev],
                         ["upscale", "srresnet-x4", ins["12mp"], out / "12mp-eager.jpg"], sr * mp12[0] * mp12[1]),
        "upscale-12mp-bf16": (["upscale", "srresnet-x4", ins["12mp"], "-o", out / "12mp-x4b.jpg", "--bf16", *dev],
                              None, sr * mp12[0] * mp12[1]),
        "classify": (["classify", "ssgan-mnist", ins["digits"], "--csv", out / "c.csv", *dev],
                     ["classify", "ssgan-mnist", ins["digits"], out / "c-eager.csv"],
                     10000 * gflop_per_image("ssgan-mnist", "discriminator")),
    }


def gflop_per_image(name: str, prefix: str = "generator") -> float:
    import eager
    from torch.utils.flop_counter import FlopCounterMode

    net, config = eager.network(name, prefix)
    side, c = config["image_size"], config["channels"]
    x = torch.randn(1, config["latent_dim"]) if prefix == "generator" and config.get("latent_dim") \
        else torch.randn(1, c, side, side)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        (net.a2b if hasattr(net, "a2b") else net)(x)
    return counter.get_total_flops() / 1e9


def gflop_per_pixel(name: str) -> float:
    """The untiled network's arithmetic per input pixel (a 128 px image's, over its pixels)."""
    import eager
    from torch.utils.flop_counter import FlopCounterMode

    net, _ = eager.network(name)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.randn(1, 3, 128, 128))
    return counter.get_total_flops() / 1e9 / 128 ** 2


def seconds(argv: list, env: dict) -> float:
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, *map(str, argv)], env=env, capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"{' '.join(map(str, argv))} failed:\n{p.stderr[-2000:]}")
    return time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(HERE))
    import speed

    rates = {"fp32": speed.cpu_rate(torch.float32), "bf16": speed.cpu_rate(torch.bfloat16)}
    print(f"CPU rates: fp32 {rates['fp32']:.0f} GFLOP/s, bf16 {rates['bf16']:.0f} GFLOP/s ({os.cpu_count()} cores)")
    env = dict(os.environ, PYTHONPATH=str(ROOT), GAN_BENCH_DEVICE=args.device)
    with tempfile.TemporaryDirectory() as tmp:
        table = rows(Path(tmp), args.device)
        wanted = [k for k in table if not args.only or k in args.only.split(",")]
        for name in wanted:
            ours, base, gflop = table[name]
            t_ours, t_base = [], []
            if "12mp" in name:  # the eager script takes 5 minutes: once; gan best of --repeats, the CPU's rates
                # measured again just before (they wander by 10-20% over minutes)
                rates = {"fp32": speed.cpu_rate(torch.float32), "bf16": speed.cpu_rate(torch.bfloat16)}
                print(f"  (CPU rates now: fp32 {rates['fp32']:.0f}, bf16 {rates['bf16']:.0f} GFLOP/s)", flush=True)
                t_ours = [seconds(["-m", "gancli", *ours], env) for _ in range(args.repeats)]
                t_base = [seconds([HERE / "eager.py", *base], env)] if base is not None else []
            for _ in range(0 if "12mp" in name else args.repeats):
                t_ours.append(seconds(["-m", "gancli", *ours], env))
                if base is not None:
                    t_base.append(seconds([HERE / "eager.py", *base], env))
            g, b = min(t_ours), min(t_base) if t_base else None
            rate = gflop / g
            print(f"{name:18} gan {g:7.1f} s" + (f"  eager {b:7.1f} s  {b / g:5.2f}x" if b else "  (eager: above)")
                  + f"  {rate:6.1f} GFLOP/s = {100 * rate / rates['fp32']:3.0f}% of fp32's rate, "
                  f"{100 * rate / rates['bf16']:3.0f}% of bf16's", flush=True)


if __name__ == "__main__":
    main()
