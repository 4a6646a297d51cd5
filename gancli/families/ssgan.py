"""The semi-supervised GAN (Odena 2016; Salimans et al. 2016, "Improved techniques for training GANs"): a
discriminator that classifies the class and judges real/fake at once, trained on a few labels and many unlabelled
images.

D outputs K class logits l(x). Read as a (K+1)-way classifier whose "fake" logit is fixed at 0,
    p(real | x) = Z(x) / (Z(x) + 1),  Z(x) = sum_k exp l_k(x),
so log-sum-exp(l) is D's real/fake logit and the usual GAN loss applies to it, while the labelled images add
cross-entropy on l itself. Every unlabelled image teaches D what digits look like; the few labels only have to
name the clusters. G is trained by feature matching: it matches the mean of D's penultimate features on real and
generated batches, which Salimans et al. found best for classification (their MNIST: 0.93% error with 100 labels).

Two network pairs: ``--ssgan-net mlp`` (the default) is Salimans et al.'s MNIST pair, a fully connected D with
Gaussian noise on every layer and weight normalisation, and an MLP G; ``conv`` is a small convolutional D with
dropout and the DCGAN generator, for larger or colour images.

``--labels-per-class K`` keeps K labels per class, a fixed choice from the seed (its indices are written in the
export's config); the rest of the data is used without labels. ``--no-adversarial`` trains the same classifier on
the same labels alone, the baseline that measures what the GAN adds.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from gancli import latents
from gancli.data.reading import DataError
from gancli.families import losses
from gancli.families.abilities import Ability
from gancli.families.adversarial import OPTIMISER, WIDTHS, TwoPlayer
from gancli.families.base import LATENT, OPTION, Family, NoiseObjective, images_phrase
from gancli.families.dcgan import DCGANGenerator, spatial_ladder
from gancli.families.mlp import MLPGenerator
from gancli.families.model import GANModel
from gancli.options import Option, at_least, group, one_of
from gancli.registry import register
from gancli.store.weights import WeightsError


class ClassifierDiscriminator(nn.Module):
    """Convolutions with dropout (the paper's D regularises heavily: 100 labels are few), global average pooling,
    ``features`` for feature matching, and K class logits."""

    def __init__(self, image_size: int, channels: int, width: int, num_classes: int, dropout: float = 0.3):
        super().__init__()
        spatial_ladder(image_size)
        w = [width, 2 * width, 4 * width]
        self.body = nn.Sequential(
            nn.Dropout(0.2), nn.Conv2d(channels, w[0], 3, padding=1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(w[0], w[0], 3, 2, 1), nn.LeakyReLU(0.2, True), nn.Dropout(dropout),
            nn.Conv2d(w[0], w[1], 3, padding=1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(w[1], w[1], 3, 2, 1), nn.LeakyReLU(0.2, True), nn.Dropout(dropout),
            nn.Conv2d(w[1], w[2], 3), nn.LeakyReLU(0.2, True), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(w[2], num_classes)

    def features(self, x):
        return self.body(x)

    def forward(self, x, labels=None, features: bool = False):
        """Class logits; with ``features``, (logits, penultimate features) from one pass."""
        h = self.body(x)
        return (self.head(h), h) if features else self.head(h)


class GaussianNoise(nn.Module):
    """Additive noise while training: the regulariser that lets a 1.5M-parameter D learn from 100 labels."""

    def __init__(self, sigma: float):
        super().__init__()
        self.sigma = sigma

    def forward(self, x):
        return x + self.sigma * torch.randn_like(x) if self.training else x


class NoisyMLPClassifier(nn.Module):
    """Salimans et al.'s MNIST discriminator: weight-normalised dense layers of 1000-500-250-250-250 ReLUs, Gaussian
    noise (sigma 0.3 on the pixels in [0, 1], 0.5 on each hidden layer), K class logits. ``features`` are the last
    hidden layer, the statistics G matches."""

    def __init__(self, image_size: int, channels: int, num_classes: int,
                 hidden: tuple[int, ...] = (1000, 500, 250, 250, 250)):
        super().__init__()
        layers, width = [GaussianNoise(0.3)], channels * image_size * image_size
        for i, h in enumerate(hidden):
            if i:
                layers.append(GaussianNoise(0.5))
            layers += [nn.utils.parametrizations.weight_norm(nn.Linear(width, h)), nn.ReLU()]
            width = h
        self.body = nn.Sequential(*layers)
        self.noise = GaussianNoise(0.5)
        self.head = nn.utils.parametrizations.weight_norm(nn.Linear(width, num_classes))

    def forward(self, x, labels=None, features: bool = False):
        h = self.body((x.flatten(1) + 1) / 2)  # the paper's sigmas are for pixels in [0, 1]
        logits = self.head(self.noise(h))
        return (logits, h) if features else logits


def labelled_subset(labels: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """Indices of ``per_class`` images of every class: a fixed choice given the seed."""
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(latents.mix(seed, 77)))
    chosen = [order[labels[order] == c][:per_class] for c in range(int(labels.max()) + 1)]
    short = [c for c, idx in enumerate(chosen) if len(idx) < per_class]
    if short:
        raise DataError(f"--labels-per-class {per_class}: class {short[0]} has fewer images than that")
    return torch.cat(chosen).sort().values


class SemiSupervised(TwoPlayer, NoiseObjective):
    shown = ("loss_d", "loss_g", "loss_sup", "acc_labelled")

    def __init__(self, ctx):
        super().__init__(ctx)
        self.G, self.D = ctx.train_nets["generator"], ctx.train_nets["discriminator"]
        labels = ctx.data.labels
        self.chosen = labelled_subset(labels, self.opts.labels_per_class, self.opts.seed)
        self.labelled = ctx.images[0][self.chosen.to(ctx.images[0].device)]
        self.labelled_y = labels[self.chosen].to(ctx.device)

    @property
    def title(self) -> str:
        return f"ssgan / {self.opts.labels_per_class} labels per class"

    def record(self) -> dict:
        return {"labels_per_class": self.opts.labels_per_class, "adversarial": self.opts.adversarial,
                "labelled_indices": self.chosen.tolist()}

    def lr_factor(self, step: int) -> float:
        return self.decay_in_second_half(step)

    def export_config(self) -> dict:
        return super().export_config() | {"classifier_classes": self.ctx.data.class_names}

    def step(self, step: int) -> dict:
        ctx, opts = self.ctx, self.opts
        x_l, idx = ctx.take(self.labelled, opts.seed + 31, opts.seed + 37, step)
        y_l = self.labelled_y[idx.to(ctx.device)]
        with ctx.autocast():
            logits_l = self.D(x_l).float()
            loss_sup = F.cross_entropy(logits_l, y_l)
        stats = {"loss_sup": loss_sup.detach(), "acc_labelled": (logits_l.argmax(1) == y_l).float().mean()}
        if not opts.adversarial:  # the baseline: the same classifier, the labels alone
            ctx.optimize("d", loss_sup)
            return stats | {"loss_d": loss_sup.detach()}
        x_u, _ = ctx.take(self.images, opts.seed, opts.seed + 7, step)
        with ctx.autocast():
            fake = self.G(ctx.noise(step, len(x_u), self.latent_dim))
            logits_u, feats_u = self.D(x_u, features=True)
            logits_f = self.D(fake.detach()).float()
            # log-sum-exp of the class logits is D's real/fake logit
            # halved as in Salimans et al., so the labelled and unlabelled terms weigh alike
            loss_unsup = 0.5 * losses.d_loss("ns", torch.logsumexp(logits_u.float(), 1), torch.logsumexp(logits_f, 1))
            loss_d = loss_sup + loss_unsup
        ctx.optimize("d", loss_d)
        with ctx.autocast():
            logits_g, feats_g = self.D(fake, features=True)
            if opts.feature_matching:
                loss_g = (feats_u.detach().float().mean(0) - feats_g.float().mean(0)).pow(2).mean()
            else:
                loss_g = losses.g_loss("ns", torch.logsumexp(logits_g.float(), 1))
        ctx.optimize("g", loss_g)
        return stats | {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(), "loss_unsup": loss_unsup.detach()}


CLASSIFIER = Ability("classifier", operations={"classify": "classifying images",
                                                "classifier_classes": "classifying images"})


class ClassifyingModel(GANModel):
    """A loaded SSGAN: its discriminator is a K-class classifier (``gan classify``)."""

    abilities = (CLASSIFIER,)

    @property
    def classifier_classes(self) -> list[str]:
        return list(self.config.get("classifier_classes") or [])

    @torch.inference_mode()
    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """Real images (N, C, H, W) in [-1, 1] at the model's size -> class probabilities (N, K)."""
        if self.discriminator is None:
            raise WeightsError(f"{self.config.get('name', 'this model')} was saved without its discriminator, "
                               "which is its classifier")
        want = (self.channels, self.image_size, self.image_size)
        if tuple(images.shape[1:]) != want:
            raise ValueError(f"images of shape {tuple(images.shape[1:])} given; the classifier takes {want}")
        self.discriminator.eval().to(self.device)
        net = self.prepared(self.discriminator, _weights_fixed)
        return torch.softmax(net(images.to(self.device, self.input_dtype)).float(), 1).cpu()


@torch.no_grad()
def _weights_fixed(net: nn.Module) -> nn.Module:
    """A copy of ``net`` whose weight-normed linear layers are plain ones holding the weight they compute: a
    parametrized weight is recomputed (its norm over every input) on every call, 12% of classifying 10,000 digits
    in batches of 256. (Not ``remove_parametrizations`` on a deep copy: the copy shares its parametrized class
    with ``net``, and removing it there would take ``net``'s weight away too.)"""
    fixed = copy.deepcopy(net).eval()
    for parent in list(fixed.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Linear) and parametrize.is_parametrized(child):
                plain = nn.Linear(child.in_features, child.out_features, child.bias is not None,
                                  device=child.bias.device if child.bias is not None else None)
                plain.weight.copy_(child.weight)
                if child.bias is not None:
                    plain.bias.copy_(child.bias)
                setattr(parent, name, plain)
    return fixed


@register
class SSGAN(Family):
    name = "ssgan"
    description = "Semi-supervised GAN (Odena 2016; Salimans et al. 2016): D classifies and judges; few labels"
    model_class = ClassifyingModel
    learns_after = 1000  # bench/learns_after.py: MNIST, batch 100: legible 26% at 1,000 (40% at 3,000)
    options = OPTIMISER + LATENT + WIDTHS + group(
        "ssgan options",
        Option("labels_per_class", int, 10, "Labelled images kept per class (a fixed choice from --seed); the "
                                            "others are used without labels.", check=at_least(1), resume=True),
        Option("feature_matching", bool, True, "Train G to match D's mean features on real images (Salimans et "
                                               "al.); off: the non-saturating loss.", negatable=True, resume=True),
        Option("ssgan_net", str, "mlp", "Networks: mlp (Salimans et al.'s MNIST pair: noisy weight-normalised D, "
                                        "MLP G) or conv (convolutional D with dropout, DCGAN G).",
               check=one_of("mlp", "conv"), resume=True),
        Option("adversarial", bool, True, "Off: train the classifier on the labelled images alone (the baseline).",
               negatable=True, resume=True),
    )
    defaults = {"lr_g": 3e-3, "lr_d": 3e-3, "batch_size": 100, "g_width": 64, "d_width": 32}  # Salimans et al.
    legacy_defaults = {"ssgan_net": "conv"}  # the first ssgan models, before --ssgan-net, wrote no ssgan_net

    def build(self, ssgan_classes: int, latent_dim: int = OPTION, image_size: int = 28, channels: int = 1,
              ssgan_net: str = OPTION, g_width: int = OPTION, d_width: int = OPTION, max_width: int = 512):
        if ssgan_net == "mlp":
            return {"generator": MLPGenerator(latent_dim, image_size, channels, [500, 500]),
                    "discriminator": NoisyMLPClassifier(image_size, channels, ssgan_classes)}
        return {"generator": DCGANGenerator(latent_dim, image_size, channels, g_width, max_width),
                "discriminator": ClassifierDiscriminator(image_size, channels, d_width, ssgan_classes)}

    def is_conditional(self, arch_args):
        return False  # G draws from z alone; the classes belong to D

    def arch_args(self, opts, data):
        if opts.ssgan_net == "conv":
            spatial_ladder(data.crop)
        if data.labels is None:
            raise ValueError(f"ssgan needs labelled data (IDX labels, or one sub-folder per class in {opts.data})")
        return self.option_args(opts, ssgan_classes=len(data.class_names), image_size=data.crop,
                                channels=data.channels)

    def objective(self, ctx):
        return SemiSupervised(ctx)

    examples = ("gan classify {where} digit.png folder/ --csv classes.csv",)

    def card_summary(self, config: dict) -> str:
        per = (config.get("training") or {}).get("labels_per_class")
        return (f"A semi-supervised GAN (Salimans et al. 2016) for {images_phrase(config)}, trained on "
                f"{config.get('dataset', 'its data')}" + (f" with {per} labels per class, the rest unlabelled" if per else "")
                + f": its discriminator is a classifier of {len(config.get('classifier_classes') or [])} classes "
                "(`gan classify`), its generator draws images.")

    @torch.no_grad()
    def evaluate_extra(self, model, real, judge=None) -> dict:
        """The classifier's accuracy on the real (test) images, over all of them."""
        if real is None or real.labels is None or model.discriminator is None:
            return {}
        x = real.images.float() / 127.5 - 1
        if tuple(x.shape[1:]) != (model.channels, model.image_size, model.image_size):
            return {"test_accuracy_note": f"test images of shape {tuple(x.shape[1:])} do not fit the classifier"}
        predicted = torch.cat([model.classify(b).argmax(1) for b in x.split(1000)])
        accuracy = float((predicted == real.labels).float().mean())
        return {"test_accuracy": round(accuracy, 4), "test_error": round(1 - accuracy, 4), "test_images": len(x)}
