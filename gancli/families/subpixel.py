"""SRResNet as ``gan upscale`` runs it: the same function, its rise rewritten on sub-pixel phases.

The generator (``gancli.families.srgan.SRResNet``) is written as trained: its x2 stages shuffle to the full size,
and its tail convolves there, to 3 channels. At inference the rise is 60-80% of the time, and most of it is
memory-bound work at up to 16 times the input's pixels; ``PhasedRise`` does the same arithmetic at half the side
(bench/RESULTS.md, issue 39). ``FoldedTrunk`` is the trunk with its batch norms folded away and, on the CPU, its
residual sums done by the convolutions. ``StagedSR`` splits the network in two for tiles of different sizes.
"""
from __future__ import annotations

import functools
import itertools

import torch
import torch.nn.functional as F
from torch import nn

EDGE_ROWS = 2  # input rows along an image's edge whose outputs the last blur's order changes: the phased tail
# reads 2 phase pixels around, the blur 1; 3 phase pixels are 1.5 input pixels


class StagedSR(nn.Module):
    """What ``gan upscale`` runs: the generator's trunk as it is, and its rise as ``PhasedRise``; ``margin`` and
    ``rise_margin`` as the generator's."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.folded = FoldedTrunk(net)
        self.phased = PhasedRise(net)
        self.scale, self.margin, self.rise_margin = net.scale, net.margin, net.rise_margin

    def trunk(self, x):
        return self.folded(x)

    def rise(self, features, x, edges: tuple[bool, bool, bool, bool] = (True, True, True, True)):
        """``features`` and ``x`` over one piece of the image, with the rise's margin; ``edges``: which of its sides
        (top, bottom, left, right) are the image's. With ``--antialias`` the piece runs in the inner order
        (``PhasedRise.forward``), and the output rows and columns along the image's edges that the order changes
        are drawn again in the edge order from a strip of the piece: the edge order on the whole piece costs 60%
        more (its blur on 32 channels' phases), the strips a few rows."""
        y = self.phased(features, x, inner=True)
        if self.phased.last_blur is None or not any(edges):
            return y
        n, k = EDGE_ROWS + self.rise_margin, EDGE_ROWS * self.scale  # a strip's input rows; the rows it redraws
        top, bottom, left, right = edges
        if top:
            y[..., :k, :] = self.phased(features[..., :n, :], x[..., :n, :])[..., :k, :]
        if bottom:
            y[..., -k:, :] = self.phased(features[..., -n:, :], x[..., -n:, :])[..., -k:, :]
        if left:
            y[..., :k] = self.phased(features[..., :n], x[..., :n])[..., :k]
        if right:
            y[..., -k:] = self.phased(features[..., -n:], x[..., -n:])[..., -k:]
        return y


class FoldedTrunk(nn.Module):
    """SRResNet's trunk for inference, the same function in fewer passes over its maps: each batch norm (running
    statistics: an affine map per channel) folded into the convolution before it, and each residual sum added as
    the convolution writes its output (``conv_add``). The trunk's element-wise passes over 32-channel maps of a
    whole tile were a quarter of its time (bench/RESULTS.md, issue 39)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.head = net.head
        self.firsts, self.prelus, self.seconds = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for block in net.blocks:
            conv1, norm1, prelu, conv2, norm2 = block.body
            self.firsts.append(_folded(conv1, norm1))
            self.prelus.append(prelu)
            self.seconds.append(_folded(conv2, norm2))
        self.fuse = _folded(*net.fuse)

    def forward(self, x):
        h = self.head(x)
        f = h
        for first, prelu, second in zip(self.firsts, self.prelus, self.seconds):
            f = conv_add(second, prelu(first(f)), f)
        return conv_add(self.fuse, f, h)


@torch.no_grad()
def _folded(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> nn.Conv2d:
    """``norm(conv(x))`` as one convolution (``norm`` in eval mode)."""
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                       conv.dilation, conv.groups, bias=True)
    folded.weight.copy_(conv.weight * scale[:, None, None, None])
    shift = norm.bias - norm.running_mean * scale
    folded.bias.copy_(shift if conv.bias is None else shift + conv.bias * scale)
    return folded


def conv_add(conv: nn.Conv2d, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """``residual + conv(x)``. On the CPU outside autograd, one oneDNN call that adds ``residual`` as it writes the
    convolution's output (the fusion torch.compile's CPU backend makes), saving a pass over the map; elsewhere,
    and in torch builds without oneDNN, the two operations."""
    fused = _fused_conv_add() if x.device.type == "cpu" and not torch.is_grad_enabled() else None
    if fused is None:
        return residual + conv(x)
    return fused(x, residual, conv.weight, conv.bias, list(conv.padding), list(conv.stride), list(conv.dilation),
                 conv.groups, "add", None, None, [], None)


@functools.cache
def _fused_conv_add():
    if not torch.backends.mkldnn.is_available():
        return None
    op = getattr(torch.ops.mkldnn, "_convolution_pointwise", None)
    return getattr(op, "binary", None)


class PhasedRise(nn.Module):
    """SRResNet's rise rewritten for inference: the same function with its work at lower resolutions. The last
    stage's output stays as its 2x2 sub-pixel phases (4C channels at half the output's side) instead of being
    shuffled, and the tail's 9x9 convolution to 3 channels becomes a 5x5 one to 12 phases on it, shuffled once at
    the end: oneDNN runs a 3-channel output slowly (the plain rise spends 38% of a tile there), and the 32-channel
    map at full size is never written. Resize stages (nearest upsampling, then a 3x3 convolution) become
    sub-pixel ones first: each output phase of a convolution on a nearest-upsampled map reads a 2x2 window of the
    map below. With ``--antialias``, the blur of an inner stage runs as it is on the shuffled map, and the last
    stage's runs on the phases (``PhasedBlur``). Pixels differ from the plain rise by float rounding only."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.scale, self.bicubic_skip = net.scale, net.bicubic_skip
        layers = list(net.upsample)
        convs = [m for m in layers if isinstance(m, nn.Conv2d)]
        prelus = [m for m in layers if isinstance(m, nn.PReLU)]
        resize = any(isinstance(m, nn.Upsample) for m in layers)
        self.convs, slopes = nn.ModuleList(), []
        for conv, prelu in zip(convs, prelus):
            weight, bias = (_resize_as_subpixel(conv.weight), conv.bias.repeat_interleave(4)) if resize \
                else (conv.weight, conv.bias)
            phased = nn.Conv2d(weight.shape[1], weight.shape[0], 3, padding=1)
            phased.weight.data.copy_(weight)
            phased.bias.data.copy_(bias)
            self.convs.append(phased)
            slopes.append(prelu.weight.detach().repeat_interleave(4))
        for i, slope in enumerate(slopes):  # buffers: they follow the module to its device and dtype
            self.register_buffer(f"slope{i}", slope.clone())
        self.blurs = nn.ModuleList(nn.Identity() for _ in prelus[:-1])
        self.last_blur = self.out_blur = None
        if net.antialias:
            self.blurs = nn.ModuleList(Blur(p.kernel) for p in prelus[:-1])
            self.last_blur = PhasedBlur(prelus[-1].kernel)
            self.out_blur = PhasedBlur(prelus[-1].kernel[:net.tail.out_channels])
        tail = net.tail
        self.tail = nn.Conv2d(4 * tail.in_channels, 4 * tail.out_channels, 5, padding=2)
        self.tail.weight.data.copy_(_tail_on_phases(tail.weight))
        self.tail.bias.data.copy_(tail.bias.repeat_interleave(4))
        self.skip = PhasedBicubic(tail.out_channels, net.scale) if net.bicubic_skip else None

    def forward(self, features, x, inner: bool = False):
        """``inner``: the caller keeps no output within the tail's and the last blur's reach of this piece's edges
        (a tile inside the image, with the rise's margin). The last blur then runs after the tail, on its 3
        channels' phases instead of 32's: one filter for every channel commutes with a convolution that mixes them,
        and only the edges' padding tells the two orders apart. The bicubic skip is added on the phases too, and
        the one shuffle to the full size comes last."""
        f = features
        for i, conv in enumerate(self.convs):
            f = F.prelu(conv(f), getattr(self, f"slope{i}"))
            if i < len(self.convs) - 1:
                f = self.blurs[i](F.pixel_shuffle(f, 2))
        if self.last_blur is not None and not inner:
            f = self.last_blur(f)
        y = self.tail(f)
        if self.last_blur is not None and inner:
            y = self.out_blur(y)
        y = y.float()  # the skip in fp32: a bf16 x alone is a grey level off
        return F.pixel_shuffle(y + self.skip(x) if self.skip is not None else y, 2)


class PhasedBicubic(nn.Module):
    """Bicubic upsampling by ``scale`` (as ``F.interpolate``: align_corners=False, edges replicated), delivered
    as the 2x2 sub-pixel phases of its output at half the output's side (channel c * 4 + 2a + b), where
    ``PhasedRise``'s tail adds to it: one 5x5 convolution from each input channel to its ``scale``**2 output
    phases, then a shuffle by ``scale // 2``. Its kernel is read off ``F.interpolate``'s own response to an
    impulse. Always fp32 (kept out of the module's buffers, so a bf16 copy of the network leaves it alone)."""

    def __init__(self, channels: int, scale: int):
        super().__init__()
        self.channels, self.scale = channels, scale
        impulse = torch.zeros(1, 1, 5, 5, dtype=torch.float64)
        impulse[0, 0, 2, 2] = 1
        response = F.interpolate(impulse, scale_factor=scale, mode="bicubic", align_corners=False)[0, 0]
        half = scale // 2
        kernel = torch.zeros(channels * scale * scale, 1, 5, 5, dtype=torch.float64)
        for c, p, q in itertools.product(range(channels), range(scale), range(scale)):
            (p1, a), (q1, b) = divmod(p, 2), divmod(q, 2)
            row = (c * 4 + 2 * a + b) * half * half + p1 * half + q1
            for u, v in itertools.product(range(5), range(5)):  # output (s i + p) reads input i + u - 2
                kernel[row, 0, u, v] = response[scale * (4 - u) + p, scale * (4 - v) + q]
        self.kernel = kernel.float()

    def forward(self, x):
        if self.kernel.device != x.device:
            self.kernel = self.kernel.to(x.device)
        y = F.conv2d(F.pad(x.float(), (2, 2, 2, 2), mode="replicate"), self.kernel, groups=self.channels)
        return F.pixel_shuffle(y, self.scale // 2)


class Blur(nn.Module):
    """``BlurredPReLU``'s low-pass alone (its PReLU folded into the stage before)."""

    def __init__(self, kernel: torch.Tensor):
        super().__init__()
        self.register_buffer("kernel", kernel.clone(), persistent=False)

    def forward(self, x):
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), self.kernel.to(x.dtype), groups=x.shape[1])


class PhasedBlur(nn.Module):
    """``BlurredPReLU``'s 3x3 low-pass on a map held as its 2x2 sub-pixel phases (channel c * 4 + 2a + b): a 3x3
    convolution from each channel's 4 phases to its 4 phases at half the side. The full-size map's reflected edge
    is each phase plane's replicated one: the pixel before the first (-1) is pixel 1, phase 1's first; the pixel
    after the last (2w) is 2w - 2, phase 0's last; the other padded values meet zero weights."""

    def __init__(self, kernel: torch.Tensor):
        super().__init__()
        c, k = kernel.shape[0], kernel[0, 0]
        out = torch.zeros(c, 2, 2, 2, 2, 3, 3)
        for a, b, a2, b2, ky, kx in itertools.product(range(2), range(2), range(2), range(2), range(3), range(3)):
            dy, dx = 2 * (ky - 1) + a2 - a, 2 * (kx - 1) + b2 - b
            if -1 <= dy <= 1 and -1 <= dx <= 1:
                out[:, a, b, a2, b2, ky, kx] = k[dy + 1, dx + 1]
        self.register_buffer("kernel", out.reshape(4 * c, 4, 3, 3), persistent=False)

    def forward(self, x):
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), self.kernel.to(x.dtype), groups=x.shape[1] // 4)


def _resize_as_subpixel(weight: torch.Tensor) -> torch.Tensor:
    """(C_out, C_in, 3, 3) of a convolution after nearest x2 upsampling -> (4 C_out, C_in, 3, 3) on the map before
    it, output channel c * 4 + 2a + b being phase (a, b) of c (PixelShuffle's order). Phase 0 reads rows i-1 (tap 0)
    and i (taps 1 and 2); phase 1 reads i (taps 0 and 1) and i+1 (tap 2)."""
    phase = torch.tensor([[[1., 0, 0], [0, 1, 1], [0, 0, 0]], [[0., 0, 0], [1, 1, 0], [0, 0, 1]]])  # [a][new][old]
    out = torch.einsum("ayk,bxl,ockl->oabcyx", phase, phase, weight.detach())
    return out.reshape(weight.shape[0] * 4, weight.shape[1], 3, 3)


def _tail_on_phases(weight: torch.Tensor) -> torch.Tensor:
    """(O, C, 9, 9) at full size -> (4 O, 4 C, 5, 5) on the 2x2 phases at half size: output phase (a, b) of o at
    offset (ky, kx) reads input phase (a', b') of c at full-size offset 2 (k - 2) + a' - a, where that is within
    the 9x9 window."""
    o, c = weight.shape[:2]
    out = torch.zeros(o, 2, 2, c, 2, 2, 5, 5)
    w = weight.detach()
    for a in range(2):
        for b in range(2):
            for a2 in range(2):
                for b2 in range(2):
                    for ky in range(5):
                        dy = 2 * (ky - 2) + a2 - a
                        for kx in range(5):
                            dx = 2 * (kx - 2) + b2 - b
                            if -4 <= dy <= 4 and -4 <= dx <= 4:
                                out[:, a, b, :, a2, b2, ky, kx] = w[:, :, dy + 4, dx + 4]
    return out.reshape(o * 4, c * 4, 5, 5)
