"""How this folder was made, with gan 0.x at commit 831d0ea (before the device data path of issue 36), from the
repository root: ``python tests/data/before_fast_path/make.py``. Running it again with a later version rewrites
``batches.npz`` from that version's data path and ``runs/`` from its runs: only do that on purpose.

- ``batches.npz``: batches drawn by ``TrainingContext.take`` from the synthetic images below (random crops, mirror,
  two domains of different lengths, batch 3, several epochs) as uint8, so a later data path can be held to the very
  same pixels.
- ``runs/dcgan`` and ``runs/cyclegan``: tiny runs stopped after 3 of 6 steps (checkpoint at step 3), for the test that
  runs made before the change still resume and export.
"""
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent


def synthetic(root: Path, counts=(7, 5), size=30):
    """Two folders of noise-and-gradient RGB images (every pixel distinct enough that a wrong crop shows)."""
    rng = np.random.default_rng(1)
    for name, n in zip(("trainA", "trainB"), counts):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    return root


def draw_batches(data: Path, out: Path, steps: int = 9):
    from gancli.train import Trainer, TrainOptions

    t = Trainer(TrainOptions(data=str(data), out=str(out), arch="cyclegan", size=24, load_size=28, g_width=4,
                             d_width=4, n_blocks=1, batch_size=3, steps=100, device="cpu"))
    batches = {}
    for domain, (images, seed) in enumerate(zip(t.images, (11, 13))):
        for index in range(steps):
            x, idx = t.ctx.take(images, seed, seed, index)
            batches[f"d{domain}_s{index}"] = ((x + 1) * 127.5).round().to(torch.uint8).numpy()
            batches[f"d{domain}_s{index}_idx"] = idx.numpy()
    t.lock.release()
    return batches


def main():
    sys.path.insert(0, str(HERE.parents[2]))
    tmp = HERE / "_tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    data = synthetic(tmp / "data")
    np.savez_compressed(HERE / "batches.npz", **draw_batches(data, tmp / "probe"))
    from gancli.train import Trainer, TrainOptions

    common = dict(data=str(data), device="cpu", batch_size=2, steps=3, log_every=1, sample_every=1000,
                  checkpoint_every=3)
    recipes = {"dcgan": dict(arch="dcgan", size=16, g_width=4, d_width=4, latent_dim=8, channels=1),
               "cyclegan": dict(arch="cyclegan", size=24, load_size=28, g_width=4, d_width=4, n_blocks=1,
                                pool_size=3)}
    runs = HERE / "runs"
    shutil.rmtree(runs, ignore_errors=True)
    for name, recipe in recipes.items():
        Trainer(TrainOptions(out=str(runs / name), **common, **recipe)).run()
        shutil.rmtree(runs / name / "export")
        for extra in ("samples", "progress.gif", "losses.png"):
            p = runs / name / extra
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    shutil.copytree(data, HERE / "data", dirs_exist_ok=True)
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
