"""CycleGAN throughput at 256 px: `gan translate`'s inference path vs. a plain eager fp32 baseline, and a training
step of `gan train --arch cyclegan` vs. an eager fp32 step, in the same run.

    python bench/translate.py                     # CPU (and CUDA when there is one)
    python bench/translate.py --device cuda --batches 1,8,32,64 --train-batch 8

Uses random weights of the full-size networks (width 64, 9 blocks): throughput does not depend on the weights.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from gancli.families.cyclegan import ResnetGenerator
from gancli.training.trainer import Trainer, TrainOptions
from gancli.use.model import GANModel


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
    ap.add_argument("--train-batch", type=int, default=1)
    ap.add_argument("--train-steps", type=int, default=3)
    args = ap.parse_args()
    devices = args.device or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    print(f"torch {torch.__version__}; CycleGAN ResNet generator (width 64, 9 blocks), {args.size} px")
    print(f"{'device':6} {'batch':>5} {'eager fp32 img/s':>17} {'gan img/s':>10} {'gan setting':>22}")
    for name in devices:
        device = torch.device(name)
        g = ResnetGenerator(3, 64, 9).to(device).eval()
        fast = ResnetGenerator(3, 64, 9).to(device).eval()
        fast.load_state_dict(g.state_dict())
        from gancli.devices import preferred_memory_format

        fmt = preferred_memory_format(fast, device)
        setting = "channels_last" if fmt == torch.channels_last else "contiguous"
        fast = fast.to(memory_format=fmt)
        amp = device.type == "cuda"
        if amp:
            setting += " + bf16"
        for b in [int(x) for x in args.batches.split(",")]:
            x = torch.rand(b, 3, args.size, args.size, device=device) * 2 - 1
            with torch.inference_mode():
                base = timed(lambda: g(x), device, args.repeats)
                xc = x.contiguous(memory_format=fmt)
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                    ours = timed(lambda: fast(xc), device, args.repeats)
            print(f"{name:6} {b:5d} {b / base:17.1f} {b / ours:10.1f} {setting:>22}", flush=True)
        base, ours = train_speeds(device, args.size, args.train_batch, args.train_steps)
        print(f"{name:6} training, batch {args.train_batch}: eager fp32 {base:.2f} img/s, gan train {ours:.2f} img/s",
              flush=True)


def eager_step(G, D, opt_g, opt_d, a, b):
    """The reference loop's step in plain fp32: G step (GAN + cycle + identity), then D step."""
    fake_b, fake_a = G.a2b(a), G.b2a(b)
    rec_a, rec_b = G.b2a(fake_b), G.a2b(fake_a)
    idt_b, idt_a = G.a2b(b), G.b2a(a)
    D.requires_grad_(False)
    loss_g = ((D.b(fake_b) - 1) ** 2).mean() + ((D.a(fake_a) - 1) ** 2).mean() \
        + 10 * (F.l1_loss(rec_a, a) + F.l1_loss(rec_b, b)) + 5 * (F.l1_loss(idt_a, a) + F.l1_loss(idt_b, b))
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()
    D.requires_grad_(True)
    loss_d = 0.5 * (((D.a(a) - 1) ** 2).mean() + (D.a(fake_a.detach()) ** 2).mean()
                    + ((D.b(b) - 1) ** 2).mean() + (D.b(fake_b.detach()) ** 2).mean())
    opt_d.zero_grad()
    loss_d.backward()
    opt_d.step()


def train_speeds(device, size, batch, steps):
    nets = GANModel.build({"architecture": "cyclegan"})
    G, D = nets["generator"], nets["discriminator"]
    G, D = G.to(device), D.to(device)
    opt_g = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
    a, b = (torch.rand(batch, 3, size, size, device=device) * 2 - 1 for _ in range(2))
    base = batch / timed(lambda: eager_step(G, D, opt_g, opt_d, a, b), device, steps)
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        for dom in ("trainA", "trainB"):
            (Path(tmp) / "data" / dom).mkdir(parents=True)
            for i in range(max(4, batch)):
                Image.fromarray((rng.random((size, size, 3)) * 255).astype(np.uint8)).save(Path(tmp) / "data" / dom / f"{i}.png")
        t = Trainer(TrainOptions(data=str(Path(tmp) / "data"), out=str(Path(tmp) / "run"), arch="cyclegan",
                                      size=size, random_crop=False, batch_size=batch, steps=1000, device=str(device)))

        def step():
            t._apply_lr()
            t.train_step()
            t.step += 1

        ours = batch / timed(step, device, steps)
    return base, ours


if __name__ == "__main__":
    main()
