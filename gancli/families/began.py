"""BEGAN (Berthelot, Schumm & Metz 2017): the discriminator is an autoencoder, and its loss is how badly it
reconstructs an image.

D learns to reconstruct real images well and generated ones badly; G learns to make images D reconstructs well.
L(v) = mean |v - D(v)| (per pixel), and
    L_D = L(x) - k_t L(G(z)),     L_G = L(G(z)),     k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(z))), 0, 1).
k_t is a proportional controller that keeps E[L(G(z))] = gamma E[L(x)]: the *diversity ratio* gamma says how much
harder fakes should be to reconstruct than real images. Lower gamma concentrates G on what D reconstructs well
(cleaner, less varied images); higher gamma buys variety. M_global = L(x) + |gamma L(x) - L(G(z))| falls as training
converges, which GAN losses otherwise do not show; it is logged (``m_global``) with k (``k``).

``--constraint`` adds BEGAN-CS's term (Chang 2018): D's encoder must recover the noise z from G(z) (L1, in D's
loss only). G is not trained on it, yet it feels it: L_G = |G(z) - dec(enc(G(z)))|, so with enc(G(z)) near z the
image G must match is the decoder's own picture of z, which differs from z to z. Nothing else in BEGAN asks G for
variety: on Fashion-MNIST G first draws black (k starts at 0, and black is what an autoencoder reconstructs best),
then stays in the classes it finds first, even those D reconstructs worst (``bench/began_per_class.py``), since its
gradient is local. (Holding G to the term as well, as we first did, let G and the encoder pass z in details the eye
cannot see, and G collapsed all the same.)

Both networks are the paper's: 3x3 convolutions with ELU, nearest-neighbour upsampling in the decoders, strided
convolutions in D's encoder, a dense bottleneck of ``hidden`` units, and G shaped like D's decoder.
"""
from __future__ import annotations

import torch
from torch import nn

from gancli.errors import OptionError
from gancli.families.adversarial import OPTIMISER, WIDTHS, TwoPlayer
from gancli.families.base import LATENT, OPTION, Family, NoiseObjective
from gancli.families.dcgan import LADDER_SIZES, spatial_ladder
from gancli.options import Option, at_least, fraction, group, non_negative
from gancli.registry import register


def _convs(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ELU(inplace=True), nn.Conv2d(c_out, c_out, 3, padding=1),
            nn.ELU(inplace=True)]


class Decoder(nn.Module):
    """h (or z) -> image: dense to start x start x width, then conv pairs and 2x nearest upsampling."""

    def __init__(self, in_dim: int, image_size: int, channels: int, width: int):
        super().__init__()
        self.start, doublings = spatial_ladder(image_size)
        self.width = width
        self.fc = nn.Linear(in_dim, width * self.start * self.start)
        layers = []
        for _ in range(doublings):
            layers += _convs(width, width) + [nn.Upsample(scale_factor=2, mode="nearest")]
        layers += _convs(width, width) + [nn.Conv2d(width, channels, 3, padding=1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, h, labels=None):
        return self.net(self.fc(h.flatten(1)).view(-1, self.width, self.start, self.start))


class Encoder(nn.Module):
    def __init__(self, hidden: int, image_size: int, channels: int, width: int):
        super().__init__()
        start, doublings = spatial_ladder(image_size)
        layers, c = [nn.Conv2d(channels, width, 3, padding=1), nn.ELU(inplace=True)], width
        for i in range(doublings):  # widths grow linearly with depth, as in the paper
            layers += _convs(c, width * (i + 1)) + [nn.Conv2d(width * (i + 1), width * (i + 2), 3, 2, 1),
                                                    nn.ELU(inplace=True)]
            c = width * (i + 2)
        layers += _convs(c, c)
        self.net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * start * start, hidden))

    def forward(self, x):
        return self.net(x)


class AutoencoderDiscriminator(nn.Module):
    """D(x) is a reconstruction of x; ``forward`` returns the per-image reconstruction error L(x)."""

    def __init__(self, hidden: int, image_size: int, channels: int, width: int):
        super().__init__()
        self.encoder = Encoder(hidden, image_size, channels, width)
        self.decoder = Decoder(hidden, image_size, channels, width)

    def reconstruct(self, x):
        return self.decoder(self.encoder(x))

    def forward(self, x, labels=None, with_code: bool = False):
        """L(x) per image; with ``with_code``, (L(x), the encoder's code of x)."""
        code = self.encoder(x)
        error = (x - self.decoder(code)).abs().flatten(1).mean(1)
        return (error, code) if with_code else error


def control(k: float, gamma: float, lambda_k: float, loss_real: float, loss_fake: float) -> tuple[float, float]:
    """One step of BEGAN's equilibrium controller: (k_{t+1}, M_global)."""
    balance = gamma * loss_real - loss_fake
    return min(max(k + lambda_k * balance, 0.0), 1.0), loss_real + abs(balance)


class Equilibrium(TwoPlayer, NoiseObjective):
    shown = ("loss_d", "loss_g", "m_global", "k")
    divergence_hint = "try lower --lr-g/--lr-d"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.G, self.D = ctx.train_nets["generator"], ctx.train_nets["discriminator"]
        self.k = 0.0  # the paper starts with D ignoring the fakes
        # --lr-stall: M_global summed over the current window, the best window's mean, the halvings so far
        self.window, self.best, self.halvings = [0.0, 0], float("inf"), 0

    def lr_factor(self, step: int) -> float:
        return 0.5 ** self.halvings

    def _watch_convergence(self, m_global: float):
        """The paper's decay: halve the learning rates when M_global, averaged over --lr-stall steps, stops falling."""
        if not self.opts.lr_stall:
            return
        self.window = [self.window[0] + m_global, self.window[1] + 1]
        if self.window[1] == self.opts.lr_stall:
            mean = self.window[0] / self.window[1]
            if mean < self.best:
                self.best = mean
            else:
                self.halvings += 1
                self.ctx.log(f"M_global stalled at {mean:.4f} (best {self.best:.4f}): learning rates x "
                           f"{0.5 ** self.halvings:g}")
            self.window = [0.0, 0]

    @property
    def title(self) -> str:
        return f"began / gamma {self.opts.gamma}"

    def record(self) -> dict:
        return {"gamma": self.opts.gamma, "lambda_k": self.opts.lambda_k} \
            | ({"constraint": self.opts.constraint} if self.opts.constraint else {})

    def state(self) -> dict:
        return {"k": torch.tensor(self.k, dtype=torch.float64),
                "stall": torch.tensor([*self.window, self.best, self.halvings], dtype=torch.float64)}

    def load_state(self, state: dict):
        self.k = float(state["k"])
        if "stall" in state:  # runs from before --lr-stall had none
            total, n, self.best, halvings = state["stall"].tolist()
            self.window, self.halvings = [total, int(n)], int(halvings)

    def step(self, step: int) -> dict:
        ctx, opts = self.ctx, self.opts
        real, _ = ctx.take(self.images, opts.seed, opts.seed + 7, step)
        with ctx.autocast():
            z = ctx.noise(step, len(real), self.latent_dim)
            fake = self.G(z)
            loss_real = self.D(real).float().mean()
            loss_fake_d, code_error = self._judge(fake.detach(), z)
            loss_d = loss_real - self.k * loss_fake_d
            if code_error is not None:
                loss_d = loss_d + opts.constraint * code_error
        ctx.optimize("d", loss_d)
        with ctx.autocast():
            loss_g = self.D(fake).float().mean()
        ctx.optimize("g", loss_g)
        k_used = self.k
        self.k, m_global = control(self.k, opts.gamma, opts.lambda_k, float(loss_real.detach()), float(loss_g.detach()))
        self._watch_convergence(m_global)
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(), "loss_real": loss_real.detach(),
                "m_global": torch.tensor(m_global), "k": torch.tensor(k_used)} \
            | ({"code_error": code_error.detach()} if code_error is not None else {})

    def _judge(self, images, z):
        """(mean L(images), BEGAN-CS's code error: the mean absolute distance between z and D's code of the images,
        or None without --constraint), in one pass of D."""
        if not self.opts.constraint:
            return self.D(images).float().mean(), None
        error, code = self.D(images, with_code=True)
        return error.float().mean(), (code.float() - z.flatten(1).float()).abs().mean()


@register
class BEGAN(Family):
    name = "began"
    step_bytes_per_pixel = 3240  # 1.3 GB at 64 px, batch 64
    description = "BEGAN (Berthelot et al. 2017): an autoencoder discriminator held in equilibrium by k_t"
    photo_size = 64  # 64 px, as the paper's faces: a laptop CPU trains it in hours
    size_rule = LADDER_SIZES
    options = OPTIMISER + LATENT + WIDTHS + group(
        "began options",
        Option("gamma", float, 0.5, "Diversity ratio: E[L(G(z))] / E[L(x)] the controller aims for.",
               check=fraction, resume=True),
        Option("lambda_k", float, 0.001, "Gain of the k_t controller.", check=non_negative, resume=True),
        Option("lr_stall", int, 0, "Halve the learning rates whenever M_global's mean over this many steps is no "
                                   "lower than its best window's (the paper's decay when convergence stalls); "
                                   "0: constant rates.", check=non_negative, resume=True),
        Option("bottleneck", int, 64, "Units of D's bottleneck (the autoencoder's code).", check=at_least(1),
               resume=True),
        Option("constraint", float, 0.0, "BEGAN-CS (Chang 2018): weight of |z - E(G(z))| in D's loss, D's encoder "
                                          "recovering G's noise, which makes the image G must match depend on z "
                                          "(needs --bottleneck equal to --latent-dim); 0: off.",
               check=non_negative, resume=True),
    )
    defaults = {"lr_g": 1e-4, "lr_d": 1e-4, "latent_dim": 64, "g_width": 32, "d_width": 32}
    exported = ("generator",)
    summary = ("A BEGAN generator (Berthelot et al. 2017: the discriminator was an autoencoder) for {images}, "
               "trained on {dataset} with gan {gan_version}.")

    arch_options = {"hidden": "bottleneck"}

    def check_options(self, opts):
        if opts.constraint and opts.bottleneck != opts.latent_dim:
            raise OptionError(f"--constraint needs --bottleneck ({opts.bottleneck}) equal to --latent-dim "
                              f"({opts.latent_dim}): D's code must be comparable with z")

    def build(self, latent_dim: int = OPTION, image_size: int = 28, channels: int = 1, g_width: int = OPTION,
              d_width: int = OPTION, hidden: int = OPTION):
        return {"generator": Decoder(latent_dim, image_size, channels, g_width),
                "discriminator": AutoencoderDiscriminator(hidden, image_size, channels, d_width)}

    def arch_args(self, opts, data):
        spatial_ladder(data.crop)
        return self.option_args(opts, image_size=data.crop, channels=data.channels)

    def objective(self, ctx):
        return Equilibrium(ctx)
