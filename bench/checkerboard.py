"""The checkerboard of a x4 upscaler, as a number: the grey output's row and column spectra at the 2- and 4-pixel
periods (where sub-pixel convolution leaves its pattern) against the neighbouring frequencies, averaged over 20
horse2zebra test photos downscaled x4 and restored (`gan eval` of an upscaler reports the same measure on all
the test photos). About 1 for real photos and bicubic; a pattern raises it.

    python bench/checkerboard.py srresnet-x4 srgan-x4 runs/NAME/export

Measured 2026-12-04 (issue 25): originals 0.95, bicubic 0.95, srresnet-x4 1.18, srgan-x4 6.23; retrained with ICNR:
SRResNet 1.26, SRGAN 3.69 (PSNR 21.89 against the zoo's 22.68)."""
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import gancli  # noqa: E402
from gancli.data.tensors import bicubic, downscale  # noqa: E402
from gancli.quality.formulas import checkerboard  # noqa: E402
from gancli.use.upscale import upscale_tensor  # noqa: E402

files = sorted((Path(__file__).resolve().parents[2] / "shared" / "data" / "horse2zebra" / "testA").glob("*.jpg"))[:20]
models = {name: gancli.load(name if "/" not in name else Path(name), device="cpu") for name in sys.argv[1:]}
rows = {k: [] for k in ["original", "bicubic", *models]}
for f in files:
    hr = torch.from_numpy(np.asarray(Image.open(f).convert("RGB"), dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)
    lr = downscale(hr[None], 4)
    grey = lambda x: 0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]
    rows["original"].append(checkerboard(grey(hr)))
    rows["bicubic"].append(checkerboard(grey(bicubic(lr, 4)[0].clamp(-1, 1))))
    for name, m in models.items():
        G = m.generator
        out = torch.from_numpy(upscale_tensor(G, lr[0], 4, G.margin, device=m.device)).permute(2, 0, 1).float() / 127.5 - 1
        rows[name].append(checkerboard(grey(out)))
for k, v in rows.items():
    print(f"{k}: {np.mean(v):.2f}")
