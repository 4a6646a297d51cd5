"""The Inception-v3 network behind the standard FID, for ``gan eval --inception-weights FILE``.

FID numbers are only comparable when they come from one particular network: the TensorFlow Inception graph of
2015-12-05 that the original FID code (Heusel et al., 2017) shipped with. pytorch-fid and torch-fidelity both carry
a PyTorch port of it, whose weights are a plain state dict usually named ``pt_inception-2015-12-05-6726825d.pth``
(torch-fidelity calls its copy ``weights-inception-2015-12-05-6726825d.pth``). This module rebuilds that network
with the same parameter names, so the file loads as is; nothing is downloaded.

The graph is not torchvision's Inception-v3. What differs, and is reproduced here:

* every batch norm uses eps = 0.001;
* the 3x3 average pools inside the A, C and E blocks ignore the zero padding (``count_include_pad=False``),
  as TensorFlow's "SAME" pooling does;
* the pool branch of the last block (Mixed_7c) is a 3x3 *max* pool, while Mixed_7b averages;
* the input is resized to 299x299 inside the graph with TensorFlow 1.x ``ResizeBilinear(align_corners=False)``,
  which samples source pixel ``i * in/out`` (no half-pixel offset). ``F.interpolate(..., align_corners=False)``
  samples ``(i + 0.5) * in/out - 0.5`` and so gives a slightly shifted image; pytorch-fid uses the latter and
  accepts the small discrepancy, torch-fidelity (and this module) use the former;
* pixel values are scaled inside the graph as ``(p - 128) / 128`` for ``p`` in 0..255.

Our images are floats in [-1, 1] (``p = (x + 1) * 127.5``, the inverse of the ``p / 127.5 - 1`` used across
gancli), so ``x`` is mapped back to 0..255, resized, then normalised exactly as the graph does. For numbers that
match other tools to the last digit, feed images quantised to 8 bits as they would be saved to PNG.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gancli.store.weights import state_mismatches

INPUT_SIZE = 299
NUM_FEATURES = 2048
NUM_CLASSES = 1008  # the 2015 graph has 1008 outputs: the 1000 ImageNet classes plus 8 unused ones


class ConvBN(nn.Module):
    """Convolution without bias, batch norm (eps 0.001), ReLU. Attribute names ``conv``/``bn`` match the weights."""

    def __init__(self, c_in: int, c_out: int, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def _pool_3x3_same(x: torch.Tensor, kind: str) -> torch.Tensor:
    """3x3, stride 1, size-preserving pool; an average only over the pixels inside the image, like TensorFlow."""
    if kind == "max":
        return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


def _reduce_3x3(x: torch.Tensor) -> torch.Tensor:
    """The stride-2 max pool that halves the grid in the stem and in the B/D blocks."""
    return F.max_pool2d(x, kernel_size=3, stride=2)


class BlockA(nn.Module):
    """35x35 block (Mixed_5b/c/d): 1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | avg pool -> 1x1."""

    def __init__(self, c_in: int, pool_channels: int):
        super().__init__()
        self.branch1x1 = ConvBN(c_in, 64, 1)
        self.branch5x5_1 = ConvBN(c_in, 48, 1)
        self.branch5x5_2 = ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = ConvBN(c_in, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, padding=1)
        self.branch_pool = ConvBN(c_in, pool_channels, 1)

    def forward(self, x):
        return torch.cat([
            self.branch1x1(x),
            self.branch5x5_2(self.branch5x5_1(x)),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool(_pool_3x3_same(x, "avg")),
        ], dim=1)


class BlockB(nn.Module):
    """35x35 -> 17x17 reduction (Mixed_6a): strided 3x3 | 1x1 -> 3x3 -> strided 3x3 | max pool."""

    def __init__(self, c_in: int):
        super().__init__()
        self.branch3x3 = ConvBN(c_in, 384, 3, stride=2)
        self.branch3x3dbl_1 = ConvBN(c_in, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, stride=2)

    def forward(self, x):
        return torch.cat([
            self.branch3x3(x),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            _reduce_3x3(x),
        ], dim=1)


class BlockC(nn.Module):
    """17x17 block with factorised 7x7 convolutions (Mixed_6b..6e); ``mid`` is the width inside the 7x7 branches."""

    def __init__(self, c_in: int, mid: int):
        super().__init__()
        row, col = dict(kernel_size=(1, 7), padding=(0, 3)), dict(kernel_size=(7, 1), padding=(3, 0))
        self.branch1x1 = ConvBN(c_in, 192, 1)
        self.branch7x7_1 = ConvBN(c_in, mid, 1)
        self.branch7x7_2 = ConvBN(mid, mid, **row)
        self.branch7x7_3 = ConvBN(mid, 192, **col)
        self.branch7x7dbl_1 = ConvBN(c_in, mid, 1)
        self.branch7x7dbl_2 = ConvBN(mid, mid, **col)
        self.branch7x7dbl_3 = ConvBN(mid, mid, **row)
        self.branch7x7dbl_4 = ConvBN(mid, mid, **col)
        self.branch7x7dbl_5 = ConvBN(mid, 192, **row)
        self.branch_pool = ConvBN(c_in, 192, 1)

    def forward(self, x):
        single = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        double = self.branch7x7dbl_1(x)
        for conv in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            double = conv(double)
        return torch.cat([self.branch1x1(x), single, double, self.branch_pool(_pool_3x3_same(x, "avg"))], dim=1)


class BlockD(nn.Module):
    """17x17 -> 8x8 reduction (Mixed_7a): 1x1 -> strided 3x3 | 1x1 -> 1x7 -> 7x1 -> strided 3x3 | max pool."""

    def __init__(self, c_in: int):
        super().__init__()
        self.branch3x3_1 = ConvBN(c_in, 192, 1)
        self.branch3x3_2 = ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = ConvBN(c_in, 192, 1)
        self.branch7x7x3_2 = ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = ConvBN(192, 192, 3, stride=2)

    def forward(self, x):
        tower = x
        for conv in (self.branch7x7x3_1, self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            tower = conv(tower)
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), tower, _reduce_3x3(x)], dim=1)


class BlockE(nn.Module):
    """8x8 block whose 3x3 convolutions split into parallel 1x3 and 3x1 halves (Mixed_7b, Mixed_7c).

    ``pool`` is "avg" for Mixed_7b and "max" for Mixed_7c: the 2015 graph really does differ there."""

    def __init__(self, c_in: int, pool: str):
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', not {pool!r}")
        self.pool = pool
        self.branch1x1 = ConvBN(c_in, 320, 1)
        self.branch3x3_1 = ConvBN(c_in, 384, 1)
        self.branch3x3_2a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = ConvBN(c_in, 448, 1)
        self.branch3x3dbl_2 = ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = ConvBN(c_in, 192, 1)

    def forward(self, x):
        a = self.branch3x3_1(x)
        b = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        return torch.cat([
            self.branch1x1(x),
            self.branch3x3_2a(a), self.branch3x3_2b(a),
            self.branch3x3dbl_3a(b), self.branch3x3dbl_3b(b),
            self.branch_pool(_pool_3x3_same(x, self.pool)),
        ], dim=1)


def resize_bilinear_tf1(x: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """Bilinear resize of (N, C, H, W) to (N, C, size, size) as TensorFlow 1.x ``ResizeBilinear`` does it.

    Output pixel ``i`` reads source coordinate ``i * (in / out)`` (float32, as in TensorFlow), interpolating between
    its floor and the next pixel (clamped at the border). No anti-aliasing, no half-pixel offset."""
    if x.shape[-2:] == (size, size):
        return x  # the source coordinate of pixel i is then exactly i

    def taps(in_size: int):
        scale = torch.tensor(float(in_size), dtype=torch.float32) / size
        src = torch.arange(size, dtype=torch.float32) * scale
        lo = src.floor()
        frac = (src - lo).to(device=x.device, dtype=x.dtype)
        lo = lo.long()
        hi = (lo + 1).clamp(max=in_size - 1)
        return lo.to(x.device), hi.to(x.device), frac

    y_lo, y_hi, fy = taps(x.shape[-2])
    x_lo, x_hi, fx = taps(x.shape[-1])

    def along_width(rows: torch.Tensor) -> torch.Tensor:
        left, right = rows.index_select(-1, x_lo), rows.index_select(-1, x_hi)
        return left + (right - left) * fx

    top = along_width(x.index_select(-2, y_lo))
    bottom = along_width(x.index_select(-2, y_hi))
    return top + (bottom - top) * fy.unsqueeze(-1)


class FIDInceptionV3(nn.Module):
    """Inception-v3 as in the 2015-12-05 TensorFlow graph used for FID.

    ``forward(images)`` takes (N, 3, H, W) or grayscale (N, 1, H, W) floats in [-1, 1], any H and W, and returns
    the (N, 2048) activations of the final global average pool, the features FID is computed on. ``fc`` (1008
    logits) is unused but kept, so that the weights file loads whole and strictly."""

    num_features = NUM_FEATURES
    input_size = INPUT_SIZE

    def __init__(self):
        super().__init__()
        # Stem: 299 -> 149 -> 147 -> 147 -> (max pool) 73 -> 73 -> 71 -> (max pool) 35
        self.Conv2d_1a_3x3 = ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = ConvBN(80, 192, 3)
        # 35x35
        self.Mixed_5b = BlockA(192, pool_channels=32)
        self.Mixed_5c = BlockA(256, pool_channels=64)
        self.Mixed_5d = BlockA(288, pool_channels=64)
        # 17x17
        self.Mixed_6a = BlockB(288)
        self.Mixed_6b = BlockC(768, mid=128)
        self.Mixed_6c = BlockC(768, mid=160)
        self.Mixed_6d = BlockC(768, mid=160)
        self.Mixed_6e = BlockC(768, mid=192)
        # 8x8
        self.Mixed_7a = BlockD(768)
        self.Mixed_7b = BlockE(1280, pool="avg")
        self.Mixed_7c = BlockE(2048, pool="max")
        self.fc = nn.Linear(NUM_FEATURES, NUM_CLASSES)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """[-1, 1] images of any size -> the (N, 3, 299, 299) tensor the first convolution sees."""
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"expected images of shape (N, 3, H, W) or (N, 1, H, W), got {tuple(images.shape)}")
        x = images.to(self.fc.weight.dtype)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        pixels = (x + 1) * 127.5  # back to the 0..255 scale the graph was fed
        pixels = resize_bilinear_tf1(pixels, self.input_size)
        return (pixels - 128) / 128

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.preprocess(images)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = _reduce_3x3(x)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = _reduce_3x3(x)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d,
                      self.Mixed_6a, self.Mixed_6b, self.Mixed_6c, self.Mixed_6d, self.Mixed_6e,
                      self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        return x.mean(dim=(2, 3))  # global average pool: (N, 2048)


def _examples(names, limit: int = 3) -> str:
    names = sorted(names)
    shown = ", ".join(names[:limit])
    return shown + (", ..." if len(names) > limit else "")


def load_fid_inception(path, device="cpu") -> FIDInceptionV3:
    """The FID Inception-v3 with the weights in ``path`` (a state dict saved with torch.save, e.g.
    ``pt_inception-2015-12-05-6726825d.pth``), in eval mode on ``device``, gradients off.

    The file is read with ``weights_only=True``: only tensors and plain containers are unpickled. Anything that is
    not exactly this network's weights (a missing, extra or misshapen tensor; another kind of file) raises
    ``ValueError`` with a one-line reason. A file that does not exist raises ``FileNotFoundError``."""
    path = Path(path)
    prefix = f"{path} is not the FID Inception-v3 weights file"
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except (FileNotFoundError, PermissionError):
        raise
    except Exception as e:  # UnpicklingError, RuntimeError (bad zip/magic), EOFError, IsADirectoryError, ...
        from gancli.store.weights import checkpoint_problem

        raise ValueError(f"{prefix}: it cannot be read as PyTorch weights ({checkpoint_problem(e)})") from None

    state = loaded
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):  # an OrderedDict is a dict
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{prefix}: it holds a {type(loaded).__name__}, not a state dict")
    not_tensors = [str(k) for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise ValueError(f"{prefix}: {len(not_tensors)} entries are not tensors (e.g. {_examples(not_tensors)})")

    model = FIDInceptionV3()
    expected = model.state_dict()
    # Batch-norm step counters only matter for training; a port saved without them is still the same network.
    optional = frozenset(k for k in expected if k.endswith(".num_batches_tracked"))
    problems = state_mismatches(expected, dict(state), optional=optional)
    if problems:
        raise ValueError(f"{prefix}: " + "; ".join(problems))

    full = {k: state.get(k, v) for k, v in expected.items()}
    model.load_state_dict(full, strict=True)
    model.requires_grad_(False)
    return model.to(device).eval()
