"""Pictures as the networks see them: PIL images -> [-1, 1] tensors at a chosen size, padded for a generator's
strides, and the bicubic down- and up-sampling that super-resolution is trained and measured against."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from PIL import Image


def to_tensor(img: Image.Image, channels: int) -> torch.Tensor:
    img = img.convert("L" if channels == 1 else "RGB")
    x = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).view(img.height, img.width, channels)
    return x.permute(2, 0, 1).float().div(127.5).sub(1.0)


def resize_shorter(img: Image.Image, size: int | None) -> Image.Image:
    if not size or min(img.size) == size:
        return img
    scale = size / min(img.size)
    return img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.BICUBIC)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Padded up to sides that are multiples of ``multiple`` and at least twice it: a ResNet generator halves the
    sides twice (multiple 4) and its instance norm needs more than one pixel there, so a 4x4 image is translated
    inside an 8x8 one and cropped back."""
    h, w = x.shape[-2:]
    ph, pw = max(-h % multiple, 2 * multiple - h), max(-w % multiple, 2 * multiple - w)
    if ph or pw:
        mode = "reflect" if (ph < h and pw < w) else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


def downscale(images: torch.Tensor, scale: int) -> torch.Tensor:
    """[-1, 1] images -> their low-resolution inputs: antialiased bicubic, quantised to 8 bits like a saved file."""
    lr = F.interpolate(images.float(), scale_factor=1 / scale, mode="bicubic", antialias=True, align_corners=False)
    return ((lr.clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1


def bicubic(images: torch.Tensor, scale: int) -> torch.Tensor:
    """The baseline every super-resolution result is measured against: bicubic interpolation."""
    return F.interpolate(images, scale_factor=scale, mode="bicubic", align_corners=False)


def quantize(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> uint8 in the same layout, rounded as a saved file is."""
    return x.clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
