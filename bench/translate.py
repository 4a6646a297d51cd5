"""CycleGAN throughput at 256 px: `gan translate`'s inference path vs. a plain eager fp32 baseline, and a training
step vs. an eager fp32 step, in the same run.

    python bench/translate.py                     # CPU (and CUDA when there is one)
    python bench/translate.py --device cuda --batches 1,8,32,64

Uses random weights of the full-size generator (width 64, 9 blocks): throughput does not depend on the weights.
"""
from __future__ import annotations

import argparse
import time

import torch

from gancli.models.cyclegan import ResnetGenerator


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, repeats):
    fn()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / repeats


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", action="append")
    ap.add_argument("--batches", default="1,4")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    devices = args.device or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    print(f"torch {torch.__version__}; CycleGAN ResNet generator (width 64, 9 blocks), {args.size} px")
    print(f"{'device':6} {'batch':>5} {'eager fp32 img/s':>17} {'gan img/s':>10} {'gan setting':>22}")
    for name in devices:
        device = torch.device(name)
        g = ResnetGenerator(3, 64, 9).to(device).eval()
        fast = ResnetGenerator(3, 64, 9).to(device).eval()
        fast.load_state_dict(g.state_dict())
        setting = "channels_last"
        fast = fast.to(memory_format=torch.channels_last)
        amp = device.type == "cuda"
        if amp:
            setting += " + bf16"
        for b in [int(x) for x in args.batches.split(",")]:
            x = torch.rand(b, 3, args.size, args.size, device=device) * 2 - 1
            with torch.inference_mode():
                base = timed(lambda: g(x), device, args.repeats)
                xc = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                    ours = timed(lambda: fast(xc), device, args.repeats)
            print(f"{name:6} {b:5d} {b / base:17.1f} {b / ours:10.1f} {setting:>22}", flush=True)


if __name__ == "__main__":
    main()
