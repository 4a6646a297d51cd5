"""The variational autoencoder (Kingma & Welling 2014), the model GANs are most often compared with.

An encoder maps an image x to a Gaussian q(z|x) = N(mu, sigma^2); a decoder maps z to Bernoulli pixel
probabilities p(x|z). Training maximises the evidence lower bound
    ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || N(0, I)) <= log p(x),
with the reparameterisation z = mu + sigma * eps so the expectation can be differentiated. There is no
discriminator: the loop trains it like any family, with one optimiser and this objective.

Pixels are grey levels in [0, 1] used as Bernoulli targets (as in the paper's MNIST experiments); the ELBO is in
nats per image. Samples are the decoder's mean image for z ~ N(0, I), which is why they look smoother (blurrier)
than a GAN's: the decoder is rewarded for the average of everything a z could have encoded.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gancli.families.abilities import Ability
from gancli.families.base import LATENT, OPTION, Family, NoiseObjective
from gancli.families.model import GANModel
from gancli.options import Option, at_least, group, learning_rate, non_negative
from gancli.registry import register
from gancli.store.weights import WeightsError


class Encoder(nn.Module):
    """x -> (mu, log sigma^2): two stride-2 convolutions and a dense layer."""

    def __init__(self, latent_dim: int, image_size: int, channels: int, width: int, hidden: int):
        super().__init__()
        side = image_size // 4
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.LeakyReLU(0.2, True),
            nn.Flatten(), nn.Linear(2 * width * side * side, hidden), nn.LeakyReLU(0.2, True))
        self.mu, self.logvar = nn.Linear(hidden, latent_dim), nn.Linear(hidden, latent_dim)

    def forward(self, x):
        h = self.net(x)
        return self.mu(h), self.logvar(h)


class Decoder(nn.Module):
    """z -> Bernoulli logits per pixel; called like any generator, it returns the mean image in [-1, 1]."""

    def __init__(self, latent_dim: int, image_size: int, channels: int, width: int, hidden: int):
        super().__init__()
        self.side, self.width = image_size // 4, width
        self.net = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.ReLU(True),
            nn.Linear(hidden, 2 * width * self.side * self.side), nn.ReLU(True),
            nn.Unflatten(1, (2 * width, self.side, self.side)),
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1), nn.ReLU(True),
            nn.ConvTranspose2d(width, channels, 4, 2, 1))

    def forward(self, z, labels=None, logits: bool = False):
        """The mean image in [-1, 1], or with ``logits`` the Bernoulli logits (through forward, so DDP sees it)."""
        out = self.net(z.flatten(1))
        return out if logits else torch.tanh(out / 2)  # tanh(l / 2) = 2 sigmoid(l) - 1


def elbo_terms(encoder: Encoder, decoder: Decoder, x: torch.Tensor, eps: torch.Tensor):
    """(reconstruction log-likelihood, KL), each in nats per image, for images x in [-1, 1] and noise eps."""
    mu, logvar = encoder(x)
    z = mu + torch.exp(0.5 * logvar) * eps
    target = (x + 1) / 2
    log_px = -F.binary_cross_entropy_with_logits(decoder(z, logits=True), target, reduction="none").flatten(1).sum(1)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)
    return log_px.mean(), kl.mean()


class ELBO(NoiseObjective):
    shown = ("loss", "reconstruction", "kl")
    divergence_hint = "try a lower --lr"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.encoder, self.decoder = ctx.train_nets["encoder"], ctx.train_nets["generator"]

    def optimizers(self):
        params = list(self.ctx.nets["encoder"].parameters()) + list(self.ctx.nets["generator"].parameters())
        return {"vae": (params, self.opts.lr, (0.9, 0.999))}

    def step(self, step: int) -> dict:
        x, _ = self.ctx.take(self.images, self.opts.seed, self.opts.seed + 7, step)
        eps = self.ctx.noise(step, len(x), self.latent_dim)
        with self.ctx.autocast():
            log_px, kl = elbo_terms(self.encoder, self.decoder, x.float(), eps)
            loss = -(log_px - self.opts.kl_weight * kl)
        self.ctx.optimize("vae", loss)
        return {"loss": loss.detach(), "reconstruction": -log_px.detach(), "kl": kl.detach(),
                "elbo": (log_px - kl).detach()}


ENCODER = Ability("encoder", operations={"encode": "encoding images"})


class EncodingModel(GANModel):
    """A loaded VAE also maps real images to latents: ``gan interpolate --between``."""

    abilities = (ENCODER,)

    @torch.inference_mode()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Real images (N, C, H, W) in [-1, 1] at the model's size -> their latents (the encoder's means)."""
        if "encoder" not in self.others:
            raise WeightsError(f"{self.config.get('name', 'this model')} was saved without its encoder")
        want = (self.channels, self.image_size, self.image_size)
        if tuple(images.shape[1:]) != want:
            raise ValueError(f"images of shape {tuple(images.shape[1:])} given; the encoder takes {want}")
        return self.others["encoder"](images.to(self.device))[0].float().cpu()


@register
class VAE(Family):
    name = "vae"
    learns_after = 750  # bench/learns_after.py: MNIST, batch 128: legible 26% at 750 (35% at 3,000)
    step_bytes_per_pixel = 1335  # 0.8 GB at 64 px, batch 64
    description = "Variational autoencoder (Kingma & Welling 2014): encoder, decoder, ELBO; no discriminator"
    photo_size = 64  # 64 px: its dense layers grow with the square of the side
    model_class = EncodingModel
    networks = ("generator", "encoder")
    exported = ("generator", "encoder")
    options = LATENT + group(
        "vae options",
        Option("lr", float, 1e-3, "Learning rate (Adam).", check=learning_rate),
        Option("kl_weight", float, 1.0, "Weight of the KL term (1: the ELBO; beta-VAE otherwise).",
               check=non_negative, resume=True),
        Option("vae_width", int, 32, "Channels of the first convolution (doubled in the second).",
               check=at_least(1), resume=True),
        Option("hidden", int, 256, "Width of the dense layer on each side.", check=at_least(1), resume=True),
    )
    defaults = {"latent_dim": 16, "batch_size": 128}
    summary = ("A variational autoencoder (Kingma & Welling 2014; z of {latent_dim}) for {images}, trained on "
               "{dataset} by maximising the ELBO, with gan {gan_version}. It samples like a GAN and also encodes.")
    examples = ("gan interpolate {where} --seeds 0-3 -o walk.gif",
                "gan interpolate {where} --between a.png b.png -o between.gif   # a walk between two real images")

    arch_options = {"width": "vae_width"}

    def build(self, latent_dim: int = OPTION, image_size: int = 28, channels: int = 1, width: int = OPTION,
              hidden: int = OPTION):
        if image_size % 4:
            raise ValueError(f"vae image_size must be a multiple of 4 (e.g. 28, 32), not {image_size}")
        return {"generator": Decoder(latent_dim, image_size, channels, width, hidden),
                "encoder": Encoder(latent_dim, image_size, channels, width, hidden)}

    def arch_args(self, opts, data):
        return self.option_args(opts, image_size=data.crop, channels=data.channels)

    def objective(self, ctx):
        return ELBO(ctx)

    @torch.no_grad()
    def evaluate_extra(self, model, real, judge=None) -> dict:
        """The test ELBO in nats per image (one z per image, drawn from a fixed seed)."""
        encoder, decoder = model.others.get("encoder"), model.generator
        if encoder is None:
            return {}
        x = real.images.float() / 127.5 - 1
        if tuple(x.shape[1:]) != (model.channels, model.image_size, model.image_size):
            return {"elbo_note": f"test images of shape {tuple(x.shape[1:])} do not fit the encoder"}
        g = torch.Generator().manual_seed(0)
        rec, kl = [], []
        for batch in x.split(500):
            eps = torch.randn(len(batch), model.latent_dim, generator=g)
            log_px, k = elbo_terms(encoder, decoder, batch.to(model.device), eps.to(model.device))
            rec.append(float(log_px) * len(batch))
            kl.append(float(k) * len(batch))
        n = len(x)
        return {"elbo": round((sum(rec) - sum(kl)) / n, 3), "reconstruction_nats": round(-sum(rec) / n, 3),
                "kl_nats": round(sum(kl) / n, 3), "elbo_images": n}
