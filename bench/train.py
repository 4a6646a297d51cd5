"""Training throughput of the DCGAN on MNIST: the `gan train` step vs. a plain reference loop, in the same run.

    python bench/train.py                 # CPU (and CUDA too, when there is one)
    python bench/train.py --device cuda --steps 300

The reference is the classic PyTorch DCGAN example's loop: a Dataset that normalises one image at a time, a shuffling
DataLoader, a Sigmoid discriminator with BCELoss, eager fp32. Both train the same 28x28 DCGAN (widths 64/64) at the
same batch size. Prints images/s and the seconds one 60,000-image MNIST epoch would take.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from gancli.data.reading import load_data
from gancli.training.trainer import Trainer, TrainOptions
from gancli.use.model import GANModel

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
EPOCH = 60_000


class MnistItems(Dataset):
    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):  # ToTensor + Normalize((0.5,), (0.5,)), one image at a time
        return (self.images[i].float() / 255 - 0.5) / 0.5, 0



def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reference_step(device, batch_size):
    """The classic DCGAN example's nets, optimisers and update: a function of one batch of real images."""
    nets = GANModel.build({"architecture": "dcgan", "arch_args": {"latent_dim": 100, "image_size": 28, "channels": 1,
                                                                  "g_width": 64, "d_width": 64}})
    G, D = nets["generator"], nets["discriminator"]
    D = nn.Sequential(D, nn.Sigmoid())
    G, D = G.to(device), D.to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = nn.BCELoss()

    def step(real):
        b = real.size(0)
        ones, zeros = torch.ones(b, device=device), torch.zeros(b, device=device)
        D.zero_grad()
        err_real = bce(D(real), ones)
        err_real.backward()
        fake = G(torch.randn(b, 100, device=device))
        err_fake = bce(D(fake.detach()), zeros)
        err_fake.backward()
        opt_d.step()
        G.zero_grad()
        bce(D(fake), ones).backward()
        opt_g.step()

    return step


def reference(images, device, batch_size, steps, warmup):
    step = reference_step(device, batch_size)
    loader = DataLoader(MnistItems(images), batch_size=batch_size, shuffle=True, drop_last=True, num_workers=2,
                        persistent_workers=True)
    done, t0 = 0, None
    while done < steps + warmup:
        for real, _ in loader:
            if done == warmup:
                sync(device)
                t0 = time.perf_counter()
            step(real.to(device))
            done += 1
            if done == steps + warmup:
                break
    sync(device)
    return steps * batch_size / (time.perf_counter() - t0)


def ours(device, batch_size, steps, warmup, bf16=None):
    with tempfile.TemporaryDirectory() as tmp:
        t = Trainer(TrainOptions(data=str(DATA), out=tmp, batch_size=batch_size, steps=steps + warmup,
                                 device=str(device), g_width=64, d_width=64, bf16=bf16))
        for _ in range(warmup):
            t.train_step()
            t.step += 1
        sync(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            t.train_step()
            t.step += 1
        sync(device)
        return steps * batch_size / (time.perf_counter() - t0)


def loop_rate(steps: int, warmup: int, **options) -> dict:
    """`gan train`'s whole loop (Trainer.run: batches, the objective's step, the pool, metrics and logging as a run
    does them) for ``warmup + steps`` steps: images/s over the last ``steps``, and the seconds the first ``warmup``
    took beyond that pace (torch.compile's compilation, the first CUDA-graph captures, cuDNN's first choices).
    ``steps`` is rounded up to a multiple of ``warmup``: the loop is timed at its log lines, which wait for the
    device."""
    steps = -(-steps // warmup) * warmup
    marks = []
    with tempfile.TemporaryDirectory() as tmp:
        t = Trainer(TrainOptions(out=str(Path(tmp) / "run"), steps=warmup + steps, log_every=warmup,
                                 sample_every=10 ** 9, checkpoint_every=10 ** 9, **options))
        start = time.perf_counter()
        t.run(progress=lambda step, total, row: marks.append((step, time.perf_counter())))
        batch = t.opts.batch_size
        compiled = t.ctx.compiled
    (s0, t0), (s1, t1) = marks[0], marks[-1]
    per_step = (t1 - t0) / (s1 - s0)
    return {"images_per_s": (s1 - s0) * batch / (t1 - t0), "warmup_extra_s": (t0 - start) - s0 * per_step,
            "compiled": compiled}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", action="append", help="cpu, cuda (default: cpu, and cuda when available)")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()
    devices = args.device or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    images = load_data(DATA).images
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; 28x28 DCGAN (G/D width 64), "
          f"batch {args.batch_size}, {args.steps} timed steps after {args.warmup} warm-up")
    print(f"{'device':8} {'loop':10} {'images/s':>10} {'s/epoch':>9}")
    for name in devices:
        device = torch.device(name)
        for label, fn in (("reference", lambda: reference(images, device, args.batch_size, args.steps, args.warmup)),
                          ("gan train", lambda: ours(device, args.batch_size, args.steps, args.warmup))):
            ips = fn()
            print(f"{name:8} {label:10} {ips:10.0f} {EPOCH / ips:9.1f}", flush=True)


if __name__ == "__main__":
    main()
