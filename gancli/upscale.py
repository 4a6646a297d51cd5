"""Super-resolution of real files of any size, in bounded memory (``gan upscale``).

The network sees one tile at a time, never more than ``tile`` x ``tile`` input pixels. Tiles overlap by the
network's receptive-field radius (``generator.margin``) on every side, and only each tile's centre is kept: an
output pixel depends on no input farther away than that radius, so the tiled result is the untiled one (to float
rounding), without seams. Batch norm runs on its stored statistics, so a tile's content does not change another's.
The output is assembled in a uint8 array; a 2000x2000 input needs the 8000x8000 output (192 MB) and one tile's
activations, not gigabytes.

``scale``: the model's factor (x4), or any smaller one above 1, reached by resampling the model's output (Lanczos);
more than the model's factor is refused (run ``gan upscale`` again on its output for x16).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from gancli.data import open_image
from gancli.imageio import save_image
from gancli.translate import Plan, to_tensor

DEFAULT_TILE = 192  # input pixels per side: with a 26-pixel margin, 53% of each tile's output is kept


def check_scale(model, scale: float | None) -> float:
    """The output's factor: the model's by default; a smaller one above 1; never more."""
    factor = int(model.config["scale"])
    if scale is None:
        return float(factor)
    if not (1 < scale <= factor):
        raise ValueError(f"--scale {scale:g}: {model.config.get('name', 'this model')} upscales x{factor}; give a "
                         f"factor above 1 and at most {factor} (smaller ones resample its output; for more, upscale "
                         "its output again)")
    return float(scale)


def check_tile(generator, tile: int) -> int:
    if tile <= 2 * generator.margin:
        raise ValueError(f"--tile {tile}: tiles must be larger than twice the network's margin of {generator.margin} "
                         f"input pixels (e.g. {DEFAULT_TILE})")
    return tile


def tile_count(height: int, width: int, tile: int, margin: int) -> int:
    """How many tiles ``upscale_tensor`` runs for an image of that size."""
    core = tile - 2 * margin
    return len(range(0, height, core)) * len(range(0, width, core))


def total_tiles(model, p: Plan, tile: int) -> int:
    """The tiles of all jobs, from the files' headers (no decoding), so that one large image's progress shows; a
    file that cannot be opened counts one step (it is skipped)."""
    total = 0
    for job in p.jobs:
        try:
            with Image.open(job.source) as im:
                total += tile_count(im.height, im.width, tile, model.generator.margin)
        except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
            total += 1
    return total


@torch.no_grad()
def upscale_tensor(net: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, factor: int, margin: int,
                   tile: int = DEFAULT_TILE, device: torch.device | str = "cpu",
                   on_tile: Callable[[], None] = lambda: None) -> np.ndarray:
    """One image (C, H, W) in [-1, 1] -> its x``factor`` output as uint8 (H*f, W*f, C), tile by tile."""
    c, h, w = x.shape
    out = np.empty((h * factor, w * factor, c), dtype=np.uint8)
    core = tile - 2 * margin
    for top in range(0, h, core):
        for left in range(0, w, core):
            y0, x0 = max(0, top - margin), max(0, left - margin)
            y1, x1 = min(h, top + core + margin), min(w, left + core + margin)
            y = net(x[None, :, y0:y1, x0:x1].to(device)).float()[0]
            bottom, right = min(h, top + core), min(w, left + core)
            keep = y[:, (top - y0) * factor:(bottom - y0) * factor, (left - x0) * factor:(right - x0) * factor]
            out[top * factor:bottom * factor, left * factor:right * factor] = \
                _to_uint8(keep).permute(1, 2, 0).cpu().numpy()
            on_tile()
    return out


def upscale_image(model, image: Image.Image, scale: float | None = None, tile: int = DEFAULT_TILE,
                  on_tile: Callable[[], None] = lambda: None) -> Image.Image:
    """A PIL image, upscaled by ``scale`` (default: the model's factor); ``on_tile`` is called after each tile."""
    scale = check_scale(model, scale)
    G, factor = model.generator, int(model.config["scale"])
    check_tile(G, tile)
    x = to_tensor(image, model.channels)
    arr = upscale_tensor(lambda t: G(t.contiguous(memory_format=model.memory_format)), x, factor, G.margin, tile,
                         model.device, on_tile)
    out = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
    del arr
    if scale != factor:
        out = out.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)
    return out


def run(model, p: Plan, scale: float | None = None, tile: int = DEFAULT_TILE,
        advance: Callable[[int], None] | None = None, notes=None) -> tuple[int, list]:
    """Upscale every job, one image at a time; unreadable inputs are skipped and returned as (file, reason);
    ``notes`` (a ``gancli.data.InputNotes``) hears of animated and transparent inputs.
    ``advance(1)`` is called per tile, and once per skipped file: ``total_tiles`` steps in all."""
    model.requires("upscale", "gan upscale")
    check_scale(model, scale)
    check_tile(model.generator, tile)
    advance = advance or (lambda k: None)
    done, skipped = 0, []
    for job in p.jobs:
        try:
            image = open_image(job.source, notes)
        except ValueError as e:
            skipped.append((job.source, str(e)))
            advance(1)
        else:
            save_image(upscale_image(model, image, scale, tile, lambda: advance(1)), job.target)
            done += 1
    return done, skipped


# ------------------------------------------------------------------------------------------------ measuring
def luma(images: torch.Tensor) -> torch.Tensor:
    """uint8 RGB (N, 3, H, W) -> Y of ITU-R BT.601 in [16, 235], as float: where super-resolution papers measure."""
    w = torch.tensor([65.481, 128.553, 24.966]).view(1, 3, 1, 1) / 255
    return 16 + (images.float() * w).sum(1, keepdim=True) if images.shape[1] == 3 else images.float()


def psnr(x: torch.Tensor, y: torch.Tensor, peak: float = 255.0) -> torch.Tensor:
    """Per image, 10 log10(peak^2 / MSE)."""
    mse = (x.float() - y.float()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(peak ** 2 / mse.clamp_min(1e-10))


def ssim(x: torch.Tensor, y: torch.Tensor, peak: float = 255.0) -> torch.Tensor:
    """Per image, SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03), via torchmetrics."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    return structural_similarity_index_measure(x.float(), y.float(), data_range=peak, reduction="none")


def downscale(images: torch.Tensor, scale: int) -> torch.Tensor:
    """[-1, 1] images -> their low-resolution inputs: antialiased bicubic, quantised to 8 bits like a saved file."""
    lr = F.interpolate(images.float(), scale_factor=1 / scale, mode="bicubic", antialias=True, align_corners=False)
    return ((lr.clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1


def bicubic(images: torch.Tensor, scale: int) -> torch.Tensor:
    """The baseline every super-resolution result is measured against: bicubic interpolation."""
    return F.interpolate(images, scale_factor=scale, mode="bicubic", align_corners=False)


def measure(model, folder, progress: Callable[[str, int, int], None] = lambda *a: None) -> dict:
    """PSNR and SSIM (on luma, ``scale`` border pixels cropped, as Ledig et al.), sharpness and the checkerboard
    measure (``metrics.checkerboard``, also of the originals) of the model's and bicubic's restorations of ``folder``'s images (its test*/ sub-folders, if it has train*/ and test*/), each
    downscaled by the model's factor first exactly as the training inputs were."""
    import time
    from pathlib import Path

    from gancli.data import load_image_folder, split_folders
    from gancli.metrics import checkerboard, laplacian_energy

    t0, factor, G = time.time(), int(model.config["scale"]), model.generator
    folders = split_folders(Path(folder), "test")
    originals = torch.cat([load_image_folder(f, None, model.channels).images for f in folders])
    side = originals.shape[-1] // factor * factor
    originals = originals[..., :side, :side]
    scores: dict[str, list[torch.Tensor]] = {"model": [], "bicubic": []}
    energy = {"model": 0.0, "bicubic": 0.0, "original": 0.0}
    pattern = {"model": [], "bicubic": [], "original": [checkerboard(luma(hr[None])[0, 0]) for hr in originals]}
    for i, hr in enumerate(originals):
        lr = downscale(hr[None].float() / 127.5 - 1, factor)[0]
        outs = {"model": torch.from_numpy(upscale_tensor(G, lr, factor, G.margin, device=model.device)).permute(2, 0, 1),
                "bicubic": _to_uint8(bicubic(lr[None], factor)[0])}
        for key, out in outs.items():
            a, b = luma(out[None])[..., factor:-factor, factor:-factor], luma(hr[None])[..., factor:-factor, factor:-factor]
            scores[key].append(torch.stack([psnr(a, b)[0], ssim(a, b)[0]]))
            energy[key] += float(laplacian_energy(out[None])[0])
            pattern[key].append(checkerboard(luma(out[None])[0, 0]))
        energy["original"] += float(laplacian_energy(hr[None])[0])
        progress("restoring", i + 1, len(originals))
    result = {"images": len(originals), "scale": factor, "folders": [str(f) for f in folders]}
    for key, prefix in (("model", ""), ("bicubic", "bicubic_")):
        mean = torch.stack(scores[key]).mean(0)
        result |= {f"{prefix}psnr": round(float(mean[0]), 3), f"{prefix}ssim": round(float(mean[1]), 4),
                   f"{prefix}sharpness": round(energy[key] / energy["original"], 4),
                   f"{prefix}checkerboard": round(sum(pattern[key]) / len(pattern[key]), 3)}
    result["original_checkerboard"] = round(sum(pattern["original"]) / len(pattern["original"]), 3)
    return result | {"seconds": round(time.time() - t0, 1)}


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
