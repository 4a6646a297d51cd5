"""A generator rewritten for inference: the same fp32 function, computed with less work.

Eager PyTorch runs a DCGAN generator layer by layer as it was trained. For sampling, two things cost time here
without changing what is computed (bench/speed.py: the dcgan-mnist generator 1.3-1.4x faster on top of NHWC; images
within ~1e-5, the same uint8 pixels but for a rare one a grey level apart):

- a batch norm after a transposed convolution, in eval mode, is an affine map per channel: it is folded into the
  convolution's weights and bias, which saves a pass over the largest activations;
- oneDNN's transposed convolution is slow at the ends of the ladder: on a 1x1 input (z -> 4x4 or 7x7) it is a
  matrix product, and with few output channels (the last layer, to 1 or 3 channels) a matrix product and a
  ``fold`` (col2im) is 3-5x faster.

``GANModel`` keeps its own generator for saving and exporting, and samples with a rewritten copy that it makes again
whenever the generator's weights change (their versions and storage).
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn


class FoldedConvTranspose2d(nn.Module):
    """A ConvTranspose2d (groups 1, no dilation or output padding) with an eval-mode BatchNorm2d folded in."""

    def __init__(self, conv: nn.ConvTranspose2d, norm: nn.BatchNorm2d | None = None):
        super().__init__()
        w = conv.weight.detach().float()
        b = conv.bias.detach().float() if conv.bias is not None else torch.zeros(conv.out_channels, device=w.device)
        if norm is not None:
            scale = norm.weight.detach().float() / torch.sqrt(norm.running_var.float() + norm.eps)
            w = w * scale[None, :, None, None]
            b = (b - norm.running_mean.float()) * scale + norm.bias.detach().float()
        fmt = torch.channels_last if conv.weight.is_contiguous(memory_format=torch.channels_last) \
            and not conv.weight.is_contiguous() else torch.contiguous_format
        self.register_buffer("weight", w.contiguous(memory_format=fmt))
        self.register_buffer("bias", b)
        self.register_buffer("matrix", w.reshape(w.shape[0], -1).contiguous())  # (in, out * kh * kw)
        self.stride, self.padding, self.kernel_size = conv.stride, conv.padding, conv.kernel_size
        self.format = fmt

    def forward(self, x):
        n, c, h, w = x.shape
        kh, kw = self.kernel_size
        if h == w == 1 and self.stride == (1, 1) and self.padding == (0, 0):  # z -> the first feature map
            y = (x.reshape(n, c) @ self.matrix).view(n, -1, kh, kw) + self.bias[None, :, None, None]
            return y.contiguous(memory_format=self.format)
        if self.bias.numel() <= 4:  # the last layer: a matrix product, then col2im
            cols = (x.permute(0, 2, 3, 1).reshape(n * h * w, c) @ self.matrix).view(n, h * w, -1).transpose(1, 2)
            size = ((h - 1) * self.stride[0] - 2 * self.padding[0] + kh, (w - 1) * self.stride[1] - 2 * self.padding[1] + kw)
            return F.fold(cols, size, self.kernel_size, stride=self.stride, padding=self.padding) \
                + self.bias[None, :, None, None]
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding)


def _plain(conv: nn.Module) -> bool:
    return isinstance(conv, nn.ConvTranspose2d) and conv.groups == 1 and conv.dilation == (1, 1) \
        and conv.output_padding == (0, 0) and conv.padding_mode == "zeros"


def _folds(norm: nn.Module) -> bool:
    return type(norm) is nn.BatchNorm2d and not norm.training and norm.running_mean is not None and norm.affine


def for_inference(generator: nn.Module) -> nn.Module:
    """An eval-mode copy of ``generator`` with its transposed convolutions (and the batch norms after them, inside
    an ``nn.Sequential``) rewritten; the generator itself is not touched."""
    fast = copy.deepcopy(generator).eval()
    for seq in [m for m in fast.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for i, name in enumerate(names):
            conv = seq._modules[name]
            if not _plain(conv):
                continue
            after = seq._modules[names[i + 1]] if i + 1 < len(names) else None
            norm = after if after is not None and _folds(after) else None
            seq._modules[name] = FoldedConvTranspose2d(conv, norm)
            if norm is not None:
                seq._modules[names[i + 1]] = nn.Identity()
    return fast


def weights_key(module: nn.Module) -> tuple:
    """Changes when any weight or buffer is changed in place (its version) or replaced (its storage)."""
    return tuple((t.data_ptr(), t._version) for t in module.state_dict(keep_vars=True).values())


def receptive_radius(net: nn.Module) -> float:
    """Input pixels an output pixel can read on either side: the layers' reach, in the order they are registered
    (a Sequential's; a residual branch's layers are its longest path), each in the input pixels its own pixels
    span. An upper bound: a transposed convolution or an upsampling counts a whole pixel of its input."""
    radius, step = 0.0, 1.0
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            radius += (m.kernel_size[0] - 1) // 2 * m.dilation[0] * step
            step *= m.stride[0]
        elif isinstance(m, nn.ConvTranspose2d):
            radius += math.ceil((m.kernel_size[0] - 1) / 2 / m.stride[0]) * step
            step /= m.stride[0]
        elif isinstance(m, nn.Upsample):
            radius += step
            step /= float(m.scale_factor if not isinstance(m.scale_factor, tuple) else m.scale_factor[0])
    return radius


class MeasuredNorm(nn.Module):
    """An instance norm whose per-channel mean and variance were measured once, on a whole picture, and are then
    used for any piece of it."""

    def __init__(self, norm: nn.InstanceNorm2d, mean: torch.Tensor, var: torch.Tensor):
        super().__init__()
        scale = torch.rsqrt(var.float() + norm.eps)
        shift = -mean.float() * scale
        if norm.affine:
            scale, shift = scale * norm.weight.detach().float(), shift * norm.weight.detach().float() \
                + norm.bias.detach().float()
        self.register_buffer("scale", scale[None, :, None, None].to(mean.dtype))
        self.register_buffer("shift", shift[None, :, None, None].to(mean.dtype))

    def forward(self, x):
        return torch.addcmul(self.shift, x, self.scale)


@torch.inference_mode()
def measure_norms(net: nn.Module, view: torch.Tensor) -> nn.Module:
    """A copy of ``net`` whose instance norms keep the statistics they see on ``view`` (one image), as
    ``MeasuredNorm``s: the function that runs a large picture in tiles, each tile normalised as the whole is."""
    fast = copy.deepcopy(net).eval()
    stats, hooks = {}, []
    norms = [(parent, name, child) for parent in fast.modules() for name, child in parent.named_children()
             if isinstance(child, nn.InstanceNorm2d) and not child.track_running_stats]

    def keep(module, args):
        x = args[0].float()
        stats[id(module)] = (x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=False))

    for _, _, norm in norms:
        hooks.append(norm.register_forward_pre_hook(keep))
    fast(view)
    for h in hooks:
        h.remove()
    for parent, name, norm in norms:
        mean, var = stats[id(norm)]
        setattr(parent, name, MeasuredNorm(norm, mean.to(view.dtype), var.to(view.dtype)).to(view.device))
    return fast
