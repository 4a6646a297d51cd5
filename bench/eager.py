"""The plain eager fp32 scripts bench/commands.py times `gan` against: the same weights (read with safetensors
into the family's own network classes, NCHW, no rewrites), the same inputs, the same outputs written, and nothing
else. What a user would write without gan.

    python bench/eager.py sample dcgan-mnist 10000 grid.png
    python bench/eager.py translate cyclegan-horse2zebra photos/ out/
    python bench/eager.py upscale srresnet-x4 photo.jpg out.jpg
    python bench/eager.py classify ssgan-mnist digits/ out.csv
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

TILE = 192  # the tile the upscale loop used before the staged path: 26 pixels of margin, 53% kept
DEVICE = torch.device(os.environ.get("GAN_BENCH_DEVICE", "cpu"))  # bench/commands.py --device


def network(name: str, prefix: str = "generator"):
    """A zoo model's network, built by its family from config.json and filled from its safetensors, in fp32."""
    from gancli.families import catalog
    from gancli.store.hub import zoo_dir

    folder = zoo_dir() / name
    config = json.loads((folder / "config.json").read_text())
    nets = catalog.get(config["architecture"]).build(**config["arch_args"])
    state = {}
    for f in sorted(folder.glob("*.safetensors")):
        state |= load_file(f)
    net = nets[prefix]
    net.load_state_dict({k[len(prefix) + 1:]: v.float() for k, v in state.items() if k.startswith(prefix + ".")})
    return net.eval().float().to(DEVICE), config


def pixels(x: torch.Tensor) -> np.ndarray:
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image.convert("RGB"))).permute(2, 0, 1).float() / 127.5 - 1


def sample(name: str, n: str, out: str):
    from gancli import latents
    from gancli.data.imageio import grid_image, save_image

    G, config = network(name)
    z = latents.latents([(0, i) for i in range(int(n))], config["latent_dim"])
    with torch.inference_mode():
        images = torch.cat([G(b.to(DEVICE)).cpu() for b in z.split(256)])
    save_image(grid_image(images, 100), Path(out))


def translate(name: str, folder: str, outdir: str):
    """A translator that knows only its training scale (DiscoGAN): each photo at that size, and back to its own."""
    G, config = network(name)
    side, grey = config["image_size"], config["channels"] == 1
    Path(outdir).mkdir(parents=True, exist_ok=True)
    for path in sorted(Path(folder).glob("*.jpg")):
        image = Image.open(path).convert("L" if grey else "RGB")
        x = torch.from_numpy(np.asarray(image.resize((side, side), Image.Resampling.BICUBIC))).float() / 127.5 - 1
        x = x[None] if grey else x.permute(2, 0, 1)
        with torch.inference_mode():
            y = pixels(G.a2b(x[None].to(DEVICE))[0])
        Image.fromarray(y[..., 0] if grey else y).resize(image.size, Image.Resampling.BICUBIC).save(
            Path(outdir) / path.name)


def upscale(name: str, source: str, out: str):
    G, config = network(name)
    x = tensor(Image.open(source))
    c, h, w = x.shape
    factor, margin = config["scale"], G.margin
    result = np.empty((h * factor, w * factor, c), dtype=np.uint8)
    core = TILE - 2 * margin
    with torch.inference_mode():
        for top in range(0, h, core):
            for left in range(0, w, core):
                y0, x0, y1, x1 = max(0, top - margin), max(0, left - margin), min(h, top + core + margin), \
                    min(w, left + core + margin)
                y = G(x[None, :, y0:y1, x0:x1].to(DEVICE))[0]
                bottom, right = min(h, top + core), min(w, left + core)
                result[top * factor:bottom * factor, left * factor:right * factor] = pixels(
                    y[:, (top - y0) * factor:(bottom - y0) * factor, (left - x0) * factor:(right - x0) * factor])
    Image.fromarray(result).save(out)


def classify(name: str, folder: str, out: str):
    D, config = network(name, "discriminator")
    paths = sorted(Path(folder).glob("*.png"))
    rows = []
    with torch.inference_mode():
        for start in range(0, len(paths), 256):
            batch = torch.stack([torch.from_numpy(np.asarray(Image.open(p).convert("L"))).float()[None] / 127.5 - 1
                                 for p in paths[start:start + 256]])
            probs = torch.softmax(D(batch.to(DEVICE)).float(), 1).cpu()
            rows += [f"{p.name},{int(q.argmax())}" for p, q in zip(paths[start:start + 256], probs)]
    Path(out).write_text("\n".join(rows) + "\n")


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    {"sample": sample, "translate": translate, "upscale": upscale, "classify": classify}[sys.argv[1]](*sys.argv[2:])
