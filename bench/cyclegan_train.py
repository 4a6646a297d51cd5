"""One CycleGAN training step: `gan train --arch cyclegan`'s step against the reference implementation's, side by
side, as bench/train.py does for DCGAN.

    python bench/cyclegan_train.py                                  # CPU: 128 px crops, batch 1, width 64, 9 blocks
    python bench/cyclegan_train.py --device cuda --batch-size 16 --steps 10 --repeats 3
    python bench/cyclegan_train.py --size 32 --width 8 --blocks 2 --steps 2 --repeats 2   # a quick look

Why: CycleGAN is the zoo's heaviest training (two ResNet generators, two PatchGANs, four losses, an image pool),
and the reference implementation (junyanz/pytorch-CycleGAN-and-pix2pix, ``cycle_gan_model.py``) is what users
compare against. Here:

- ``reference``: that model's update, written plainly (not copied): G_A (A->B), G_B (B->A), D_A (judges B), D_B
  (judges A); LSGAN losses (MSE against 1 and 0); cycle L1 x10; identity L1 x0.5x10; image pools of 50; one Adam
  over both generators, one over both discriminators; the discriminators frozen (requires_grad False) during the
  generators' update; ``backward_D_A`` and ``backward_D_B`` each on half the sum of the real and fake losses.
  Eager fp32, NCHW, PyTorch's defaults. Its batches are fixed random tensors already on the device (no loading).
- ``ours``: the same networks (gancli.families.cyclegan) trained by gancli's own ``Trainer`` on a small synthetic
  two-domain folder (root/trainA, root/trainB), its steps driven one by one as bench/train.py's ``ours`` does: crops,
  mirroring and the pools included. gancli's default on the device (CUDA: bf16 autocast and channels_last; CPU:
  fp32, NCHW), or ``--bf16``.

Images/s are the best of ``--repeats`` rounds, reference and ours alternating; the ratio (ours / reference, > 1:
ours is faster) is the median of the rounds' back-to-back pairs, since a shared machine's load moves. Peak memory is
measured in a fresh subprocess per configuration, so the two never mix: on CUDA ``torch.cuda.max_memory_allocated``,
on the CPU the process's peak RSS (``ru_maxrss``; it includes torch's own ~0.3-0.5 GB, shown apart).

The ceiling: the reference step's arithmetic (torch.utils.flop_counter: convolutions with their gradients), per
image, at the reference's images/s, against the device's measured rate (CUDA: large matrix products and a
CycleGAN-shaped convolution in fp32, TF32 and bf16; CPU: bench/speed.py's ``cpu_rate``).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from gancli.families.cyclegan import PatchDiscriminator, ResnetGenerator  # noqa: E402


class ReferencePool:
    """The reference implementation's image pool, as it works: one image at a time in Python, each swapped into
    the history with probability 1/2 once it is full (gancli's own pool does the same as batched tensor operations)."""

    def __init__(self, size: int):
        self.size, self.images = size, []

    def query(self, batch, g):
        out = []
        for image in batch.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=g) < 0.5:
                k = int(torch.randint(0, self.size, (), generator=g))
                out.append(self.images[k].clone())
                self.images[k] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)


def sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ------------------------------------------------------------------------------------------------ the two steps
def reference_step(device, width: int = 64, blocks: int = 9, d_width: int = 64, pool_size: int = 50, seed: int = 0):
    """The reference implementation's CycleGAN update as a function of one batch of each domain (real_a, real_b)."""
    torch.manual_seed(seed)
    G_A, G_B = ResnetGenerator(3, width, blocks).to(device), ResnetGenerator(3, width, blocks).to(device)
    D_A, D_B = PatchDiscriminator(3, d_width).to(device), PatchDiscriminator(3, d_width).to(device)
    optimizer_G = torch.optim.Adam([*G_A.parameters(), *G_B.parameters()], lr=2e-4, betas=(0.5, 0.999))
    optimizer_D = torch.optim.Adam([*D_A.parameters(), *D_B.parameters()], lr=2e-4, betas=(0.5, 0.999))
    fake_A_pool, fake_B_pool = ReferencePool(pool_size), ReferencePool(pool_size)
    pool_rng = torch.Generator().manual_seed(seed)
    lambda_A = lambda_B = 10.0
    lambda_idt = 0.5

    def gan_loss(prediction, target_is_real: bool):  # LSGAN
        return F.mse_loss(prediction, torch.full_like(prediction, 1.0 if target_is_real else 0.0))

    def set_requires_grad(nets, flag: bool):
        for net in nets:
            for p in net.parameters():
                p.requires_grad = flag

    def backward_D_basic(netD, real, fake):
        loss = (gan_loss(netD(real), True) + gan_loss(netD(fake.detach()), False)) * 0.5
        loss.backward()
        return loss

    def step(real_A, real_B):
        # forward
        fake_B = G_A(real_A)
        rec_A = G_B(fake_B)
        fake_A = G_B(real_B)
        rec_B = G_A(fake_A)
        # generators
        set_requires_grad([D_A, D_B], False)
        optimizer_G.zero_grad()
        idt_A = G_A(real_B)
        idt_B = G_B(real_A)
        loss_idt_A = F.l1_loss(idt_A, real_B) * lambda_B * lambda_idt
        loss_idt_B = F.l1_loss(idt_B, real_A) * lambda_A * lambda_idt
        loss_G_A = gan_loss(D_A(fake_B), True)
        loss_G_B = gan_loss(D_B(fake_A), True)
        loss_cycle_A = F.l1_loss(rec_A, real_A) * lambda_A
        loss_cycle_B = F.l1_loss(rec_B, real_B) * lambda_B
        (loss_G_A + loss_G_B + loss_cycle_A + loss_cycle_B + loss_idt_A + loss_idt_B).backward()
        optimizer_G.step()
        # discriminators
        set_requires_grad([D_A, D_B], True)
        optimizer_D.zero_grad()
        backward_D_basic(D_A, real_B, fake_B_pool.query(fake_B, pool_rng))  # backward_D_A
        backward_D_basic(D_B, real_A, fake_A_pool.query(fake_A, pool_rng))  # backward_D_B
        optimizer_D.step()

    return step


def random_batches(device, batch: int, size: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.rand(batch, 3, size, size, generator=g) * 2 - 1).to(device) for _ in range(2)]


def reference(device, batch: int, size: int, width: int = 64, blocks: int = 9):
    """A function of ``steps`` that runs that many reference steps on fixed batches."""
    step = reference_step(device, width, blocks)
    real_a, real_b = random_batches(device, batch, size)

    def run(steps: int):
        for _ in range(steps):
            step(real_a, real_b)

    return run


def make_domains(root: Path, size: int, n: int, seed: int = 0) -> Path:
    """root/trainA and root/trainB, ``n`` random RGB PNGs each of ``size`` px (the trainer resizes them to its load
    size, then crops ``--size``)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for domain in ("trainA", "trainB"):
        (root / domain).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / domain / f"{i:03d}.png")
    return root


def ours(device, batch: int, size: int, width: int = 64, blocks: int = 9, bf16: bool | None = None,
         workdir: Path | None = None):
    """gancli's Trainer on a synthetic two-domain folder: (a function of ``steps`` that runs that many of its steps,
    the trainer). ``bf16=None``: gancli's default on the device."""
    from gancli.training.trainer import Trainer, TrainOptions

    workdir = Path(workdir or tempfile.mkdtemp(prefix="cyclegan-bench-"))
    data = workdir / "data"
    if not (data / "trainB").is_dir():
        make_domains(data, size, batch + 1)
    out = workdir / f"run-b{batch}-{'default' if bf16 is None else 'bf16' if bf16 else 'fp32'}"
    t = Trainer(TrainOptions(data=str(data), out=str(out), arch="cyclegan", size=size, g_width=width,
                             n_blocks=blocks, batch_size=batch, steps=10 ** 6, device=str(device), bf16=bf16,
                             seed=0))

    def run(steps: int):
        for _ in range(steps):
            t.train_step()
            t.step += 1

    return run, t


def describe(trainer) -> str:
    fmt = "channels_last" if trainer.memory_format == torch.channels_last else "NCHW"
    return f"{'bf16 autocast' if trainer.amp else 'fp32'}, {fmt}"


def seconds(run, steps: int, device) -> float:
    sync(device)
    t0 = time.perf_counter()
    run(steps)
    sync(device)
    return time.perf_counter() - t0


def compare(device, batch: int, size: int, width: int = 64, blocks: int = 9, steps: int = 5, repeats: int = 3,
            warmup: int = 2, bf16: bool | None = None) -> dict:
    """Both steps in alternating rounds: images/s (best), the ratio ours/reference (median of the rounds), and what
    our path ran (e.g. "bf16 autocast, channels_last")."""
    device = torch.device(device)
    with tempfile.TemporaryDirectory(prefix="cyclegan-bench-") as tmp:
        ref_run = reference(device, batch, size, width, blocks)
        our_run, trainer = ours(device, batch, size, width, blocks, bf16, Path(tmp))
        ref_run(warmup)
        our_run(warmup)
        ref_s, our_s = [], []
        for _ in range(repeats):
            ref_s.append(seconds(ref_run, steps, device))
            our_s.append(seconds(our_run, steps, device))
        path = describe(trainer)
        trainer.lock.release()
    images = batch * steps
    return {"reference": images / min(ref_s), "ours": images / min(our_s), "path": path,
            "ratio": statistics.median(r / o for r, o in zip(ref_s, our_s)), "repeats": repeats}


# ------------------------------------------------------------------------------------------------ memory
def _peak_here(which: str, device, batch: int, size: int, width: int, blocks: int, steps: int,
               bf16: bool | None) -> dict:
    """Run in a fresh process (``--memory-of``): build one side, run ``steps`` steps, report its peak."""
    device = torch.device(device)
    start_rss = _rss_now()
    with tempfile.TemporaryDirectory(prefix="cyclegan-bench-") as tmp:
        run = reference(device, batch, size, width, blocks) if which == "reference" else \
            ours(device, batch, size, width, blocks, bf16, Path(tmp))[0]
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        run(steps)
        sync(device)
    if device.type == "cuda":
        return {"peak_bytes": torch.cuda.max_memory_allocated(device), "kind": "cuda"}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    return {"peak_bytes": peak, "start_bytes": start_rss, "kind": "rss"}


def _rss_now() -> int:
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def peak_memory(which: str, device, batch: int, size: int, width: int = 64, blocks: int = 9, steps: int = 3,
                bf16: bool | None = None, timeout: float = 120) -> dict | None:
    """One side's peak memory, measured in a fresh subprocess: {"peak_bytes", "kind": "cuda"|"rss", ...}, or None
    when the subprocess fails or runs out of time."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--memory-of", which, "--device", str(device),
           "--batch-size", str(batch), "--size", str(size), "--width", str(width), "--blocks", str(blocks),
           "--steps", str(steps)] + (["--bf16"] if bf16 else [])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")]))
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        return json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 else None
    except (subprocess.TimeoutExpired, ValueError, IndexError):
        return None


def memory_note(ref: dict | None, our: dict | None) -> str:
    gib = lambda m: f"{m['peak_bytes'] / 2 ** 30:.2f} GiB" if m else "n/a"
    if (ref or our or {}).get("kind") == "cuda":
        return f"peak GPU memory (max_memory_allocated) {gib(ref)} reference, {gib(our)} gan"
    over = lambda m: f" ({(m['peak_bytes'] - m['start_bytes']) / 2 ** 30:.2f} over the process after imports)" \
        if m and m.get("start_bytes") else ""
    return f"peak RSS {gib(ref)}{over(ref)} reference, {gib(our)}{over(our)} gan"


# ------------------------------------------------------------------------------------------------ the ceiling
def flops_per_image(device, batch: int, size: int, width: int = 64, blocks: int = 9) -> float:
    """FLOPs of one reference step (forward and backward, all four nets), per image of a domain."""
    step = reference_step(torch.device(device), width, blocks)
    real_a, real_b = random_batches(torch.device(device), batch, size)
    with FlopCounterMode(display=False) as counter:
        step(real_a, real_b)
    return counter.get_total_flops() / batch


def device_rates(device, small: bool = False) -> dict:
    """The device's measured arithmetic rate, TFLOP/s: {"fp32", "tf32", "bf16"} (the best of a large matrix
    product and a CycleGAN residual-block convolution at batch 16). On CUDA fp32 is with TF32 off, tf32 with it on
    (cuDNN's convolutions use TF32 by default, matrix products do not); the TF32 switches are put back after. On
    the CPU, bench/speed.py's ``cpu_rate`` (there is no TF32: tf32 = fp32)."""
    device = torch.device(device)
    if device.type != "cuda":
        import speed  # bench/speed.py

        fp32, bf16 = speed.cpu_rate(torch.float32, 2 if small else 5), speed.cpu_rate(torch.bfloat16, 2 if small else 5)
        return {"fp32": fp32 / 1e3, "tf32": fp32 / 1e3, "bf16": bf16 / 1e3}
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    n, batch = (1024, 1) if small else (8192, 16)
    out = {}
    try:
        for name, dtype, tf32 in (("fp32", torch.float32, False), ("tf32", torch.float32, True),
                                  ("bf16", torch.bfloat16, False)):
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
            a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
            x = torch.randn(batch, 256, 34, 34, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
            w = torch.randn(256, 256, 3, 3, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
            best = 0.0
            for fn, work in ((lambda: a @ b, 2 * n ** 3), (lambda: F.conv2d(x, w), 2 * batch * 256 * 256 * 9 * 32 * 32)):
                for _ in range(3):
                    fn()
                for _ in range(5 if small else 10):
                    best = max(best, work / seconds(lambda _: fn(), 1, device))
            out[name] = best / 1e12
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
    return out


def ceiling(flop_per_image: float, reference_ips: float, rates: dict) -> dict:
    """The reference's arithmetic rate and its share of each measured rate (the ceiling a faster path could reach
    without doing less arithmetic is 1 / share)."""
    used = flop_per_image * reference_ips / 1e12
    return {"tflops": used, **{f"share_{k}": used / v for k, v in rates.items() if v}}


# ------------------------------------------------------------------------------------------------ the command
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", type=int, default=128, help="crop side, px")
    ap.add_argument("--batch-size", default="1", help="one or more, comma-separated: 1,16")
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--blocks", type=int, default=9)
    ap.add_argument("--steps", type=int, default=5, help="steps per timed round")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--bf16", action="store_true", help="gan's step under bf16 autocast (default: gan's default)")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    ap.add_argument("--memory-of", choices=("reference", "ours"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    bf16 = True if args.bf16 else None
    batches = [int(b) for b in str(args.batch_size).split(",")]
    if args.memory_of:  # the fresh subprocess of peak_memory
        print(json.dumps(_peak_here(args.memory_of, args.device, batches[0], args.size, args.width, args.blocks,
                                    args.steps, bf16)))
        return 0
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {device}" + (f" ({torch.cuda.get_device_name(device)})"
                                                     if device.type == "cuda" else
                                                     f" ({torch.get_num_threads()} threads)")
          + f"; CycleGAN {args.size} px crops, width {args.width}, {args.blocks} blocks; images/s best of "
          f"{args.repeats} rounds of {args.steps} steps; ratio: median of the back-to-back pairs")
    print(f"{'what':34} {'gan path':30} {'reference':>10} {'gan':>9} {'ratio':>6}  memory")
    results = []
    for b in batches:
        r = compare(device, b, args.size, args.width, args.blocks, args.steps, args.repeats, bf16=bf16)
        memory = "" if args.no_memory else memory_note(
            peak_memory("reference", device, b, args.size, args.width, args.blocks, bf16=bf16),
            peak_memory("ours", device, b, args.size, args.width, args.blocks, bf16=bf16))
        what = f"train cyclegan {args.size} px, batch {b}"
        print(f"{what:34} {r['path']:30} {r['reference']:10.2f} {r['ours']:9.2f} {r['ratio']:5.2f}x  {memory}",
              flush=True)
        results.append((what, b, r))
    rates = device_rates(device)
    print(f"\nceiling: the device's measured rate {rates['fp32']:.2f} TFLOP/s fp32, {rates['tf32']:.2f} TF32, "
          f"{rates['bf16']:.2f} bf16; the reference's arithmetic at its best images/s above")
    for what, b, r in results:
        per_image = flops_per_image(device, b, args.size, args.width, args.blocks)
        c = ceiling(per_image, r["reference"], rates)
        print(f"{what:34} {per_image / 1e9:8.2f} GFLOP/image  reference {c['tflops']:.3f} TFLOP/s = "
              f"{100 * c['share_tf32']:.1f}% of the fp32/TF32 rate (ceiling {1 / c['share_tf32']:.1f}x), "
              f"{100 * c['share_bf16']:.1f}% of bf16's (ceiling {1 / c['share_bf16']:.1f}x)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
