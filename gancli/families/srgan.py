"""SRGAN (Ledig et al. 2017): photo-realistic single-image super-resolution, and its MSE twin SRResNet.

The generator is the paper's SRResNet: a 9x9 convolution and PReLU, residual blocks of (3x3 conv, batch norm,
PReLU, 3x3 conv, batch norm) with a skip, a long skip around them all, sub-pixel upsampling (a convolution to 4x the
channels and ``PixelShuffle(2)``, per factor of 2) and a 9x9 convolution to RGB. One addition for CPU-sized models:
the bicubic upscaling of the input is added to the output (``bicubic_skip``), so the network learns only the detail
bicubic misses and starts at bicubic's quality (``--no-bicubic-skip`` is the paper's network exactly).
The discriminator is the paper's: eight 3x3 convolutions (widths w, w, 2w, 2w, 4w, 4w, 8w, 8w; every second one
with stride 2) with batch norm and LeakyReLU, then two dense layers; an average pool before them lets it take any
crop size.

Training is self-supervised on any folder of images: random high-resolution crops (``--size``, 96 px as the paper),
their low-resolution inputs made in the step by antialiased bicubic downscaling (quantised to 8 bits, as a saved
file would be). The content loss is pixel MSE (SRResNet, ``--adversarial-weight 0``) or, for SRGAN, the MSE between
feature maps of a network we have offline: the early convolutions of our zoo classifier ``classifier-horse2zebra``
play VGG's role. The adversarial term has the paper's weight 1e-3, and SRGAN starts from the MSE model's weights
(``--init-from``), as in the paper.
"""
from __future__ import annotations

import copy
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gancli.data.reading import DataError, ImageData, load_data, split_folders, to_model_range
from gancli.data.tensors import bicubic, downscale  # noqa: F401  (this family's inputs and baseline)
from gancli.families import losses
from gancli.families.abilities import Ability
from gancli.families.adversarial import BLOCKS, LOSS, OPTIMISER, WIDTHS
from gancli.families.base import INIT_FROM, OPTION, UPSAMPLE, Family, Objective, TrainingData, init_generator
from gancli.families.graphs import ExportGraph, image_graph
from gancli.families.model import GANModel
from gancli.families.subpixel import StagedSR
from gancli.options import Option, group, non_negative, one_of
from gancli.registry import register

FEATURE_NET = "classifier-horse2zebra"  # the content loss's feature extractor: a zoo model, so never a download
FEATURE_LAYERS = 11  # its body up to the third convolution's ReLU: 128 channels at 1/4 resolution ("relu3")
FEATURE_SCALE = 2.5  # feature maps divided by this: the loss is then near pixel MSE's size on horse2zebra crops


# ------------------------------------------------------------------------------------------------ networks
class ResidualBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                  nn.PReLU(width), nn.Conv2d(width, width, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(width))

    def forward(self, x):
        return x + self.body(x)


def icnr(conv: nn.Conv2d, factor: int = 2) -> nn.Conv2d:
    """ICNR (Aitken et al. 2017): a sub-pixel convolution initialised so that the factor x factor outputs of each
    channel start with one kernel, i.e. as nearest-neighbour upsampling. Initialised at random instead, the sub-pixels
    start out of step with each other: the checkerboard that training then fails to remove."""
    groups = factor * factor
    sub = torch.empty(conv.out_channels // groups, *conv.weight.shape[1:])
    nn.init.kaiming_normal_(sub)  # PixelShuffle takes output channel c * factor**2 + k to sub-pixel k of channel c
    with torch.no_grad():
        conv.weight.copy_(sub.repeat_interleave(groups, dim=0))
        if conv.bias is not None:
            conv.bias.zero_()
    return conv


UPSAMPLINGS = ("shuffle", "resize")  # of family.UPSAMPLINGS, those this generator has


class SRResNet(nn.Module):
    """Low-resolution images in [-1, 1] -> ``scale`` times larger ones (unclamped; callers clamp to [-1, 1]).

    ``margin`` is the receptive field's radius in input pixels: an output pixel depends only on inputs within it,
    which is what lets ``gan upscale`` cut a large image into overlapping tiles and give back the same pixels."""

    def __init__(self, channels: int = 3, width: int = 64, n_blocks: int = 16, scale: int = 4,
                 bicubic_skip: bool = True, upsample: str = "shuffle", antialias: bool = False):
        super().__init__()
        if upsample not in UPSAMPLINGS:
            raise ValueError(f"upsample must be one of {', '.join(UPSAMPLINGS)}, not {upsample!r}")
        self.scale, self.bicubic_skip, self.antialias = scale, bicubic_skip, antialias
        stages = int(math.log2(scale))
        self.head = nn.Sequential(nn.Conv2d(channels, width, 9, padding=4), nn.PReLU(width))
        self.blocks = nn.Sequential(*[ResidualBlock(width) for _ in range(n_blocks)])
        self.fuse = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width))
        ups = []
        for _ in range(stages):  # either reads at most one pixel around, at the stage's input scale (the margin)
            ups += [icnr(nn.Conv2d(width, 4 * width, 3, padding=1)), nn.PixelShuffle(2)] if upsample == "shuffle" \
                else [nn.Upsample(scale_factor=2), nn.Conv2d(width, width, 3, padding=1)]
            ups += [BlurredPReLU(width) if antialias else nn.PReLU(width)]
        self.upsample = nn.Sequential(*ups)
        self.tail = nn.Conv2d(width, channels, 9, padding=4)
        if bicubic_skip:  # start at bicubic: the learned detail begins small
            nn.init.normal_(self.tail.weight, 0.0, 1e-3)
            nn.init.zeros_(self.tail.bias)
        radius = 4 + 2 * n_blocks + 1 + sum(2.0 ** -k for k in range(stages)) + 4 / scale \
            + (sum(2.0 ** -(k + 1) for k in range(stages)) if antialias else 0)
        self.margin = math.ceil(radius) + (2 if bicubic_skip else 0)  # bicubic reads 2 pixels either side

    def forward(self, x, labels=None):
        return self.rise(self.trunk(x), x)

    # Two halves with very different costs: the trunk runs at the input's size, the rise at up to ``scale`` times
    # it. gan upscale runs the trunk on large tiles and the rise on small ones, each sized for its own memory.
    def trunk(self, x):
        h = self.head(x)
        return h + self.fuse(self.blocks(h))

    def rise(self, features, x):
        """``features`` and ``x`` over the same input region: the image ``scale`` times larger."""
        y = self.tail(self.upsample(features))
        return y + bicubic(x, self.scale) if self.bicubic_skip else y

    @property
    def rise_margin(self) -> int:
        """Input pixels the rise reads around an output's own (its convolutions at each scale; bicubic's 2)."""
        stages = range(int(math.log2(self.scale)))
        return max(2 if self.bicubic_skip else 0, math.ceil(sum(2.0 ** -k for k in stages) + 4 / self.scale
                                                            + (sum(2.0 ** -(k + 1) for k in stages)
                                                               if self.antialias else 0)))


class BlurredPReLU(nn.PReLU):
    """A stage's PReLU followed by a fixed [1, 2, 1] x [1, 2, 1] / 16 low-pass per channel (edges reflected), with
    ``--antialias``: what a x2 stage leaves at the 2-pixel period and its mixes (the dot lattice ``gan eval``'s
    ``lattice`` reads) is what it removes. A PReLU's parameter under a PReLU's name and a kernel that is not saved:
    a model's weights load with or without it (``--init-from`` either way)."""

    def __init__(self, channels: int):
        super().__init__(channels)
        k = [[v / 16 for v in (1.0, 2.0, 1.0)], [v / 16 for v in (2.0, 4.0, 2.0)], [v / 16 for v in (1.0, 2.0, 1.0)]]
        # from numbers, not tensor arithmetic: on the meta device (every load's first build) that imports dynamo
        self.register_buffer("kernel", torch.tensor([[k]] * channels), persistent=False)

    def forward(self, x):
        y = super().forward(x)
        return F.conv2d(F.pad(y, (1, 1, 1, 1), mode="reflect"), self.kernel.to(y.dtype), groups=y.shape[1])


class Clamped(nn.Module):
    """The exported network: SRResNet's output clamped to [-1, 1], as ``gan upscale`` clamps it before writing."""

    def __init__(self, net: SRResNet):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x).clamp(-1, 1)


class Discriminator(nn.Module):
    """The paper's discriminator on high-resolution patches: one logit per image."""

    def __init__(self, channels: int = 3, width: int = 64):
        super().__init__()
        layers, c_in = [nn.Conv2d(channels, width, 3, padding=1), nn.LeakyReLU(0.2, True)], width
        for i, mult in enumerate((1, 2, 2, 4, 4, 8, 8)):
            stride = 2 if i % 2 == 0 else 1
            layers += [nn.Conv2d(c_in, width * mult, 3, stride, 1, bias=False), nn.BatchNorm2d(width * mult),
                       nn.LeakyReLU(0.2, True)]
            c_in = width * mult
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(c_in, 16 * width), nn.LeakyReLU(0.2, True), nn.Linear(16 * width, 1))

    def forward(self, x, labels=None):
        return self.head(self.features(x).mean((2, 3)))


def feature_net(device) -> nn.Module:
    """The frozen early layers of the zoo classifier, for the feature content loss (loaded from the bundled zoo
    through the safe weights path)."""
    from gancli.quality.judges import load_judge

    body = load_judge(FEATURE_NET, device).net.body[:FEATURE_LAYERS]
    return body.eval().requires_grad_(False)


# ------------------------------------------------------------------------------------------------ options
SR_OPTIONS = group(
    "srgan options",
    Option("scale", int, 4, "Upscaling factor: 2, 4 or 8.", check=one_of(2, 4, 8), resume=True),
    Option("adversarial_weight", float, 1e-3, "Weight of the adversarial loss (the paper's 1e-3). 0 trains the "
                                              "MSE twin, SRResNet: no discriminator step.",
           check=non_negative, resume=True),
    Option("content", str, None, "Content loss: mse (pixel MSE) or features (MSE between feature maps of "
                                 f"{FEATURE_NET}'s early layers, VGG's role in the paper). Default: mse when "
                                 "--adversarial-weight is 0 (SRResNet), else features (SRGAN).",
           check=one_of("mse", "features"), resume=True),
    Option("bicubic_skip", bool, True, "Add the bicubic upscaling of the input to the output (--no-bicubic-skip: "
                                       "the paper's network).", negatable=True, resume=True),
    Option("antialias", bool, False, "A fixed [1,2,1] low-pass after each x2 stage: no dot lattice at the 2- and "
                                     "4-pixel periods (gan eval's lattice); its weights load either way, so "
                                     "--init-from a model without it fine-tunes it.", resume=True),
)


def content_kind(opts) -> str:
    return opts.content or ("mse" if opts.adversarial_weight == 0 else "features")


# ------------------------------------------------------------------------------------------------ objective
class SuperResolution(Objective):
    """Content loss (+ adversarial loss, when weighted): one G step, then one D step on real and restored crops."""

    measurable = False
    export_dtype = torch.float16
    wires: frozenset[str] = frozenset()  # of what a --loss may need (losses.Loss.needs): its step calls d and g only

    def __init__(self, ctx):
        super().__init__(ctx)
        self.G, self.D = ctx.nets["generator"], ctx.nets["discriminator"]
        self.G_train, self.D_train = ctx.train_nets["generator"], ctx.train_nets["discriminator"]
        self.scale, self.images = ctx.arch_args["scale"], ctx.images[0]
        self.adversarial, self.content = self.opts.adversarial_weight, content_kind(self.opts)
        self.features = feature_net(ctx.device) if self.content == "features" else None
        self.shown = ("loss_g", "content", "psnr") + (("loss_d", "d_real", "d_fake") if self.adversarial else ())
        off, crop = (self.images.shape[-1] - ctx.crop) // 2, ctx.crop
        self.fixed = to_model_range(self.images[:4, :, off:off + crop, off:off + crop].to(ctx.device))
        if self.opts.init_from:
            init_generator(self.G, self.opts.init_from, SRGAN(), ctx.arch_args,
                           ("channels", "g_width", "n_blocks", "scale", "bicubic_skip", "upsample"))

    @property
    def title(self) -> str:
        return "SRResNet (MSE)" if not self.adversarial else f"SRGAN ({self.content} content)"

    def record(self) -> dict:
        return {"content_loss": self.content, "adversarial_weight": self.adversarial, "init_from": self.opts.init_from}

    def optimizers(self):
        betas = (self.opts.beta1, self.opts.beta2)
        groups = {"g": (list(self.G.parameters()), self.opts.lr_g, betas)}
        if self.adversarial:
            groups["d"] = (list(self.D.parameters()), self.opts.lr_d, betas)
        return groups

    def content_loss(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        if self.features is None:
            return F.mse_loss(sr, hr)
        # the paper rescales VGG's feature maps by 1/12.75 so the loss is of pixel MSE's order; ours by FEATURE_SCALE
        if sr.shape[1] == 1:  # grey images: the colour classifier sees them as grey RGB
            sr, hr = sr.expand(-1, 3, -1, -1), hr.expand(-1, 3, -1, -1)
        return F.mse_loss(self.features(sr), self.features(hr)) / FEATURE_SCALE ** 2

    def step(self, step: int) -> dict:
        ctx, opts = self.ctx, self.opts
        hr, _ = ctx.take(self.images, opts.seed, opts.seed + 7, step)
        lr = downscale(hr, self.scale)
        with ctx.autocast():
            sr = self.G_train(lr).float()
            content = self.content_loss(sr, hr)
            loss_g = content
            if self.adversarial:
                self.D.requires_grad_(False)  # the G step needs no D gradients
                loss_g = loss_g + self.adversarial * losses.g_loss(opts.loss, self.D(sr).float())
        ctx.optimize("g", loss_g)
        mse = F.mse_loss(sr.detach().clamp(-1, 1), hr)
        stats = {"loss_g": loss_g.detach(), "content": content.detach(),
                 "psnr": 10 * torch.log10(4 / mse.clamp_min(1e-10))}  # range [-1, 1]: peak-to-peak 2
        if self.adversarial:
            self.D.requires_grad_(True)
            with ctx.autocast():
                d_real, d_fake = self.D_train(hr).float(), self.D_train(sr.detach()).float()
                loss_d = losses.d_loss(opts.loss, d_real, d_fake)
            ctx.optimize("d", loss_d)
            stats |= {"loss_d": loss_d.detach(), "d_real": d_real.mean().detach(), "d_fake": d_fake.mean().detach()}
        return stats

    @torch.no_grad()
    def grid(self, sampler):
        """Per row: the low-resolution input (nearest), bicubic, the model, the original."""
        lr = downscale(self.fixed, self.scale)
        near = F.interpolate(lr, scale_factor=self.scale, mode="nearest")
        rows = [near, bicubic(lr, self.scale).clamp(-1, 1), sampler(lr).float().clamp(-1, 1), self.fixed]
        return torch.stack(rows, 1).flatten(0, 1).float().cpu(), 4

    def export_config(self) -> dict:
        return {"task": "super-resolution", "scale": self.scale, "latent_dim": 0, "class_names": None,
                "training": self.record()}


UPSCALING = Ability("upscaling", operations={"upscale": "gan upscale"}, replaces_generate="upscale")


class UpscalingModel(GANModel):
    """A loaded super-resolution model: low-resolution images in, ``scale`` times larger ones out."""

    abilities = (UPSCALING,)

    @torch.inference_mode()
    def upscale(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) in [-1, 1] -> (N, C, h * scale, w * scale), whole; for photos of any size in bounded
        memory, tile by tile, see gancli.use.upscale."""
        staged = self.staged()
        x = images.to(self.device, self.input_dtype).contiguous(memory_format=self.memory_format)
        with self.autocast():
            return staged.rise(staged.trunk(x), x).float().clamp(-1, 1).cpu()

    def staged(self) -> StagedSR:
        """The generator as gan upscale runs it (``StagedSR``), made once per set of weights and precision (in
        bf16 under --bf16), in the memory format the device prefers."""
        return self.prepared(self.generator, _staged).to(memory_format=self.memory_format)


def _staged(net: SRResNet) -> StagedSR:
    return StagedSR(copy.deepcopy(net)).eval()


# ------------------------------------------------------------------------------------------------ the family
@register
class SRGAN(Family):
    name = "srgan"
    step_bytes_per_pixel = 7800  # 1.6 GB at 96 px crops, batch 16
    description = "SRGAN / SRResNet (Ledig et al. 2017): super-resolution, x4 by default; `gan upscale`"
    model_class = UpscalingModel
    exported = ("generator",)
    options = OPTIMISER + LOSS + WIDTHS + BLOCKS + UPSAMPLE + SR_OPTIONS + INIT_FROM
    defaults = {"n_blocks": 16, "lr_g": 1e-4, "lr_d": 1e-4, "beta1": 0.9, "batch_size": 16, "size": 96, "random_crop": True, "upsample": "shuffle",
                "mirror": True}

    def check_options(self, opts):
        if opts.upsample not in UPSAMPLINGS:
            raise ValueError(f"srgan's generator upsamples by {' or '.join(UPSAMPLINGS)}, not {opts.upsample}")
        if opts.size % opts.scale:
            raise ValueError(f"--size {opts.size} (the high-resolution crop) must be a multiple of --scale "
                             f"{opts.scale}")
        if opts.adversarial_weight:
            losses.check_wired(self.name, opts.loss, SuperResolution.wires)

    def build(self, channels: int = 3, g_width: int = OPTION, d_width: int = OPTION, n_blocks: int = OPTION,
              scale: int = OPTION, bicubic_skip: bool = OPTION, upsample: str = OPTION, antialias: bool = OPTION):
        if scale not in (2, 4, 8):
            raise ValueError(f"srgan scale must be 2, 4 or 8, not {scale}")
        return {"generator": SRResNet(channels, g_width, n_blocks, scale, bicubic_skip, upsample, antialias),
                "discriminator": Discriminator(channels, d_width)}

    def load_data(self, opts) -> TrainingData:
        """Images at their own resolution (square, centre-cropped to their typical shorter side); the step crops."""
        root = Path(opts.data).expanduser()
        parts = [load_data(root, None, opts.channels)] if not root.is_dir() else []
        for folder in split_folders(root) if root.is_dir() else []:
            size = parts[0].image_size if parts else None
            parts.append(load_data(folder, size, opts.channels or (parts[0].channels if parts else None)))
        data = parts[0] if len(parts) == 1 else ImageData(
            torch.cat([p.images for p in parts]), source=" + ".join(p.source for p in parts),
            skipped=[s for p in parts for s in p.skipped], notes=[n for p in parts for n in p.notes])
        if data.image_size < opts.size:
            raise DataError(f"the images in {opts.data} are {data.image_size} px, smaller than the --size "
                            f"{opts.size} crop: give a smaller --size")
        return TrainingData([data], opts.size, dataset=root.resolve().name)

    def arch_args(self, opts, data):
        return self.option_args(opts, channels=data.channels)

    def objective(self, ctx):
        return SuperResolution(ctx)

    def card_summary(self, config):
        training = config.get("training", {})
        what = ("SRResNet, the MSE twin of SRGAN (pixel MSE content loss, no adversarial loss)"
                if not training.get("adversarial_weight") else
                f"SRGAN ({'classifier-feature' if training.get('content_loss') == 'features' else 'pixel MSE'} "
                f"content loss + adversarial loss x "
                f"{training.get('adversarial_weight'):g})")
        return (f"A x{config['scale']} super-resolution model, {what} (Ledig et al. 2017), trained on random "
                f"{config['image_size']} px crops of {config['dataset']} with gan {config['gan_version']}; "
                "it upscales images of any size.")

    def card_use(self, config, where):
        return [f"gan upscale {where} photo.jpg                 # -> photo-x{config['scale']}.jpg",
                f"gan upscale {where} photos/ --outdir big/"]

    def pipeline_tag(self, config):
        return "image-to-image"

    def export_graphs(self, model) -> list[ExportGraph]:
        """Low-resolution images of any size -> ``scale`` times larger ones, whole (``gan upscale`` cuts large ones
        into tiles to bound memory; the pixels are the same)."""
        return [image_graph(Clamped(model.generator), model.channels, [(16, 16), (12, 20)], "upscaled",
                            scale=model.generator.scale)]
