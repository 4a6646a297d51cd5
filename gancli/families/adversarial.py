"""The adversarial objective shared by the families that draw images from noise (mlp, dcgan, acgan, stylegan).

``AdversarialObjective`` runs D steps on real and generated batches, then one G step, with one of the losses of
``gancli.families.losses``. What differs between families composes as ``Term``s added to D's or G's loss: the WGAN-GP
gradient penalty, ACGAN's auxiliary classifier, StyleGAN's lazy R1. The option groups every such family takes are
declared here, once.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from gancli.families import losses
from gancli.families.base import LATENT, NoiseObjective, Objective
from gancli.options import Option, at_least, group, learning_rate, non_negative

OPTIMISER = group(
    "Optimiser",
    Option("lr_g", float, 2e-4, "Generator learning rate (Adam).", check=learning_rate),
    Option("lr_d", float, 2e-4, "Discriminator learning rate (Adam).", check=learning_rate),
    Option("beta1", float, 0.5, "Adam beta1 (0.5: Radford et al. 2016's choice for GANs).", check=lambda v: None if 0 <= v < 1 else
           "must be in [0, 1)"),
    Option("beta2", float, 0.999, "Adam beta2.", check=lambda v: None if 0 <= v < 1 else "must be in [0, 1)"),
)
LR_DECAY = group(
    "Optimiser",
    Option("lr_decay", bool, False, "Keep both learning rates for the first half of the run, then take them linearly "
                                    "to 0, so the last steps settle instead of oscillating.",
           resume=True),
)


class TableOption(Option):
    """An option whose help is written from a table when it is read, not when this module loads: ``gan train``
    builds its flags each time it runs, so a loss added to losses.LOSSES since is listed too (and its check,
    losses.not_a_loss, reads the table when it checks)."""

    # the setter takes what Option's __init__ passes, and keeps nothing: the table is the help
    help = property(lambda self: losses.help_words(), lambda self, _: None)


LOSS = (TableOption("loss", str, "ns", "", check=losses.not_a_loss, resume=True, group="Adversarial loss"),)
D_STEPS = group(
    "Adversarial loss",
    Option("d_steps", int, 1, "Discriminator updates per generator update.", check=at_least(1), resume=True),
    Option("gp_weight", float, 10.0, "Gradient-penalty weight for --loss wgan-gp.", check=non_negative),
    Option("r1r2_gamma", float, 0.05, "R1 and R2 weight (gamma/2 each) for --loss rpgan (R3GAN's CIFAR-10 start).",
           check=non_negative, resume=True),
)
CONDITIONAL = group(
    "Class conditioning",
    Option("conditional", bool, False, "Condition G and D on the class labels (cGAN).", resume=True),
)
WIDTHS = group(
    "Network widths",
    Option("g_width", int, 64, "Generator width (its narrowest layer's channels).", check=at_least(1), resume=True),
    Option("d_width", int, 64, "Discriminator width.", check=at_least(1), resume=True),
)
PACK = group(
    "PacGAN",
    Option("pack", int, 1, "PacGAN (Lin et al. 2018): D judges this many samples at once, stacked on its input "
           "channels (with --conditional, each with its label planes), so a G that repeats itself is easy to catch. "
           "--batch-size must be a multiple of it.",
           check=lambda v: None if 1 <= v <= 8 else "must be between 1 and 8", resume=True),
)
BLOCKS = group(
    "Network widths",
    Option("n_blocks", int, 9, "Residual blocks of the generator (translators: of each one).",
           flag="--blocks", check=at_least(1), resume=True),
)
GAN = OPTIMISER + LR_DECAY + LOSS + D_STEPS + LATENT


def pack(x: torch.Tensor, m: int) -> torch.Tensor:
    """m consecutive inputs of D as one: (B, C, ...) -> (B/m, m*C, ...) (Lin et al.'s packing)."""
    return x if m == 1 else x.reshape(x.shape[0] // m, m * x.shape[1], *x.shape[2:])


def check_pack(opts):
    """A packed D needs whole packs in every batch: the batch is not rounded, the user picks a multiple."""
    m = opts.get("pack") or 1
    if opts.batch_size % m:
        from gancli.errors import OptionError

        raise OptionError(f"--batch-size {opts.batch_size} must be a multiple of --pack {m}: D judges packs of {m} "
                          "samples")


def noise_arch_args(opts, data, conditional: bool) -> dict:
    """Builder arguments every noise-to-image family shares: z size, image size and channels, classes."""
    check_stack(opts, conditional)
    args = {"latent_dim": opts.latent_dim, "image_size": data.crop, "channels": data.channels}
    if (opts.get("pack") or 1) > 1:  # only then, so that unpacked models' config.json stays as it was
        args["pack"] = opts.pack
    if conditional:
        if data.labels is None:
            raise ValueError(f"a conditional model needs labelled data: put each class's images in its own "
                             f"sub-folder of {opts.data}")
        args["num_classes"] = len(data.class_names)
    return args


def check_stack(opts, conditional: bool):
    if opts.get("stack") and conditional:
        raise ValueError("--stack 3 (Stacked-MNIST) is for unconditional models of MNIST-style digits")


# ------------------------------------------------------------------------------------------------ terms
class Term:
    """An add-on to the adversarial losses. Each method returns a loss to add (or None) and may add stats."""

    def discriminator(self, obj: "AdversarialObjective", step: int, real, fake, labels, real_extra, fake_extra,
                      stats: dict):
        return None

    def generator(self, obj: "AdversarialObjective", fake_extra, labels, stats: dict):
        return None


class GradientPenalty(Term):
    """WGAN-GP (Gulrajani et al. 2017), in fp32: its second-order gradients are precision-hungry."""

    def __init__(self, weight: float):
        self.weight = weight

    def discriminator(self, obj, step, real, fake, labels, real_extra, fake_extra, stats):
        return self.weight * losses.gradient_penalty(obj.D_train, real, fake.float(), labels, obj.pack)


class R1R2(Term):
    """R3GAN's regulariser (Huang et al. 2025): gamma/2 (||grad D(x)||^2 + ||grad D(G(z))||^2), on real and
    generated images every step."""

    def __init__(self, gamma: float):
        self.gamma = gamma

    def discriminator(self, obj, step, real, fake, labels, real_extra, fake_extra, stats):
        r1 = losses.zero_centred_penalty(obj.D_train, real, labels, obj.pack)
        r2 = losses.zero_centred_penalty(obj.D_train, fake, labels, obj.pack)
        stats["r1"], stats["r2"] = r1.detach(), r2.detach()
        return self.gamma / 2 * (r1 + r2)


class AuxiliaryClassifier(Term):
    """ACGAN (Odena et al. 2017): D also names the class of real and generated images; G wants its class named."""

    def discriminator(self, obj, step, real, fake, labels, real_extra, fake_extra, stats):
        stats["class_acc_real"] = (real_extra.argmax(1) == labels).float().mean().detach()
        return F.cross_entropy(real_extra, labels) + F.cross_entropy(fake_extra, labels)

    def generator(self, obj, fake_extra, labels, stats):
        return F.cross_entropy(fake_extra, labels)


class R1(Term):
    """R1 (Mescheder et al. 2018): gamma/2 ||grad D(x)||^2 on real images, pulling D flat on the data. Lazy, as in
    StyleGAN2: every ``every`` steps with the weight multiplied by ``every``, which costs the same and trains alike.
    (StyleGAN2 also scales D's Adam rate and betas by every/(every+1) to match; at every=16 that is a 6% change,
    left out here.)"""

    def __init__(self, gamma: float, every: int = 16):
        self.gamma, self.every = gamma, every

    def discriminator(self, obj, step, real, fake, labels, real_extra, fake_extra, stats):
        if self.gamma == 0 or step % self.every:
            return None
        x = real.detach().float().requires_grad_(True)
        out = obj.D_train(x, labels)
        out = out[0] if isinstance(out, tuple) else out
        (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
        penalty = grad.reshape(len(grad) // obj.pack, -1).pow(2).sum(1).mean()  # per input of D, a pack
        stats["r1"] = penalty.detach()
        return penalty * (self.gamma / 2 * self.every)


# The Term that adds each penalty a loss may need (losses.Loss.penalty) to D's loss, from the run's options
PENALTIES = {losses.GRADIENT_PENALTY: lambda opts: GradientPenalty(opts.gp_weight),
             losses.R1_R2: lambda opts: R1R2(opts.r1r2_gamma)}


# ------------------------------------------------------------------------------------------------ the objective
class TwoPlayer(Objective):
    """G and D, each with its own Adam (``--lr-g``, ``--lr-d``, ``--beta1``, ``--beta2``), and a ``--loss``."""

    divergence_hint = "try lower --lr-g/--lr-d or another --loss"
    # what its step wires beyond D's and G's loss functions (losses.Loss.needs): a loss that needs more is refused
    # by losses.check_wired. Here nothing: a loop of its own calls d_loss and g_loss, and that is all.
    wires: frozenset[str] = frozenset()

    def optimizers(self):
        betas = (self.opts.beta1, self.opts.beta2)
        return {"g": (list(self.ctx.nets["generator"].parameters()), self.opts.lr_g, betas),
                "d": (list(self.ctx.nets["discriminator"].parameters()), self.opts.lr_d, betas)}

    @property
    def title(self) -> str:
        return f"{self.opts.arch} / {self.opts.loss}"

    def record(self) -> dict:
        return {"loss": self.opts.loss}


class AdversarialObjective(TwoPlayer, NoiseObjective):
    shown = ("loss_d", "loss_g", "d_real", "d_fake")
    wires = frozenset({*PENALTIES, losses.REAL_OUTPUTS})  # every loss whose penalty has a Term

    @property
    def guides(self) -> dict[str, tuple[float, str]]:
        """At p_g = p_data the optimal D is p_data / (p_data + p_g) = 1/2 for the sigmoid losses and for LSGAN's 0/1
        targets, and V(D, G) (logged for the sigmoid losses) is -log 4. Raw scores (Loss.reads_as "score") have no
        such level."""
        half = (0.5, "1/2: the optimal D where p_g = p_data")
        reads_as = losses.get(self.opts.loss).reads_as
        guides = {"d_real": half, "d_fake": half} if reads_as != "score" else {}
        if reads_as == "probability":
            guides["value"] = (losses.OPTIMAL_VALUE, "-log 4: the optimum, where p_g = p_data")
        return guides

    def __init__(self, ctx, terms: tuple[Term, ...] = ()):
        super().__init__(ctx)
        opts = self.opts
        self.G, self.D = ctx.nets["generator"], ctx.nets["discriminator"]
        self.G_train, self.D_train = ctx.train_nets["generator"], ctx.train_nets["discriminator"]
        self.loss = losses.get(opts.loss)
        self.terms = list(terms) + ([PENALTIES[self.loss.penalty](opts)] if self.loss.penalty else [])
        self.batches_per_step = opts.d_steps
        self.pack = opts.get("pack") or 1  # the networks pack their inputs; the penalties' norms are per pack
        self.labels = ctx.data.labels.to(ctx.device) if self.num_classes else None

    def lr_factor(self, step: int) -> float:
        return self.decay_in_second_half(step) if self.opts.get("lr_decay") else 1.0

    def batch(self, index: int):
        """Batch ``index`` (counting D steps) of this process: a pure function of (seed, index, rank)."""
        x, idx = self.ctx.take(self.images, self.opts.seed, self.opts.seed + 7, index)
        return x, (self.labels[idx.to(self.ctx.device)] if self.labels is not None else None)

    def generate(self, z, labels, index: int):
        """G's images for batch ``index`` (counting D steps)."""
        return self.G_train(z, labels)

    def discriminate(self, x, labels):
        out = self.D_train(x, labels)
        return (out[0].float(), out[1].float()) if isinstance(out, tuple) else (out.float(), None)

    def step(self, step: int) -> dict:
        loss, ctx, stats = self.loss, self.ctx, {}
        for k in range(self.batches_per_step):
            index = step * self.batches_per_step + k
            real, labels = self.batch(index)
            with ctx.autocast():
                fake = self.generate(ctx.noise(index, len(real), self.latent_dim), labels, index)
                real_out, real_extra = self.discriminate(real, labels)
                fake_out, fake_extra = self.discriminate(fake.detach(), labels)
                loss_d = loss.d(real_out, fake_out)
            for term in self.terms:
                extra = term.discriminator(self, step, real, fake.detach(), labels, real_extra, fake_extra, stats)
                if extra is not None:
                    loss_d = loss_d + extra
            ctx.optimize("d", loss_d)

        with ctx.autocast():
            gen_out, gen_extra = self.discriminate(fake, labels)
            paired = None
            if loss.g_reads_real:  # the updated D's outputs on the real batch each fake is paired with
                with torch.no_grad():
                    paired = self.discriminate(real, labels)[0]
            loss_g = loss.g(gen_out, paired)
        for term in self.terms:
            extra = term.generator(self, gen_extra, labels, stats)
            if extra is not None:
                loss_g = loss_g + extra
        ctx.optimize("g", loss_g)
        with torch.no_grad():
            out = {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(),
                   "d_real": loss.logged(real_out).mean(), "d_fake": loss.logged(fake_out).mean()}
            if loss.reads_as == "probability":  # V(D, G), whose optimum is -log 4
                out["value"] = -losses.cross_entropy(real_out, fake_out)
            return out | stats
