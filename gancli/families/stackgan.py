"""StackGAN (Zhang et al. 2017), small: text -> a coarse 16x16 image (stage I) -> the 32x32 image (stage II).

- **Text.** There is no caption data set offline, so the captions are written here from Fashion-MNIST's labels:
  five training phrasings per class ("a pair of trousers", "pants", ...) and two *unseen* phrasings per class, made
  only of vocabulary words ("long pants"), which training never shows and ``gan eval`` measures. A caption is
  lower-case words; its embedding is the mean of learned word vectors through a dense layer (the words of these
  captions say the class whatever their order, so a GRU would buy nothing but time). The encoder is trained with
  stage I's generator, by the GAN losses and an auxiliary caption -> class cross-entropy: without it the GAN
  gradient alone reaches the word vectors weakly and late, and synonyms ("pants", "trousers") need not meet.
- **Conditioning augmentation.** Each stage maps the text embedding e to N(mu(e), sigma(e)^2) and draws its
  condition c from it, with KL(N(mu, sigma^2) || N(0, I)) added to G's loss (``--ca-kl-weight``, 2.0 as in the
  authors' configurations). The two draws' noise is part of the sampler's z (``noise_dim + 2 ca_dim``
  numbers), so image i of a seed is still a pure function of (seed, i).
- **Stages.** One run trains stage I (with the text encoder) for ``--stage1-steps`` steps, then freezes it and
  trains stage II on its outputs, as the paper does; the loop checkpoints and resumes either phase.
- **Matching-aware discriminators** (Reed et al. 2016): real image + its caption is real; a generated image + its
  caption, and a real image + a caption of another class, are fake (half weight each).
- **A class head** (``--class-weight``, as TAC-GAN, Dash et al. 2017): each discriminator also names the class of the
  caption of every image it sees, and G is rewarded when its image is named as its caption's class. The matching
  term alone says only "wrong caption" through one logit; the head tells G which class a wrong image looks like.
- **A mode-seeking term** (``--mode-seeking``, MSGAN, Mao et al. 2019): each step G also draws every caption from a
  second noise, and is rewarded for two images as far apart as their noises. Without it a caption drew one picture
  (within-class diversity 0.64 of the real class's spread for trousers; ``gan eval``'s ``text_diversity``).

Stage I's real images are the 32x32 training images average-pooled to 16x16. Fashion-MNIST is trained at
``--size 32``. The vocabulary is stored in config.json (``vocabulary``) and checked as untrusted input.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gancli import latents
from gancli.data.datasets import class_key
from gancli.errors import OptionError
from gancli.families import losses
from gancli.families.adversarial import OPTIMISER
from gancli.families.base import OPTION, Family, Objective, TrainingData
from gancli.families.captions import (
    CAPTION_KEYS,
    CAPTIONS,
    MAX_WORDS,
    TEXT_SAMPLES,
    StackGANModel,
    check_classes,
    check_vocabulary,
    class_spread_ratio,
    drawn_from_captions,
    tokens,
    vocabulary_of,
)
from gancli.families.graphs import ExportGraph, sampler_graph
from gancli.options import Option, at_least, group, non_negative
from gancli.quality.measures import Table
from gancli.registry import register


def kl_term(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)), summed over dimensions, averaged over the batch."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1).mean()


# ------------------------------------------------------------------------------------------------ networks
class TextEncoder(nn.Module):
    """Word indices -> embedding e (mean of word vectors, then a dense layer), and e's class logits (the auxiliary
    loss that trains the encoder)."""

    def __init__(self, vocab_size: int, word_dim: int, text_dim: int, num_classes: int):
        super().__init__()
        self.words = nn.Embedding(vocab_size, word_dim, padding_idx=0)
        self.dense = nn.Sequential(nn.Linear(word_dim, text_dim), nn.LeakyReLU(0.2))
        self.classify = nn.Linear(text_dim, num_classes)
        self.text_dim = text_dim

    def forward(self, ids: torch.Tensor | None, n: int) -> torch.Tensor:
        if ids is None:  # no caption: the empty one (what the loop's EMA calibration passes)
            ids = torch.zeros(n, 1, dtype=torch.long, device=self.words.weight.device)
        mask = (ids > 0).unsqueeze(-1).to(self.words.weight.dtype)
        mean = (self.words(ids) * mask).sum(1) / mask.sum(1).clamp(min=1)
        return self.dense(mean)


class Augmentation(nn.Module):
    """Conditioning augmentation: e -> (mu, logvar) of the condition c."""

    def __init__(self, text_dim: int, ca_dim: int):
        super().__init__()
        self.fc = nn.Linear(text_dim, 2 * ca_dim)

    def forward(self, e: torch.Tensor, eps: torch.Tensor):
        mu, logvar = self.fc(e).chunk(2, 1)
        logvar = logvar.clamp(-10, 10)
        return mu + torch.exp(0.5 * logvar) * eps, mu, logvar


def _up(w_in: int, w_out: int) -> list[nn.Module]:
    # upsampling then a 3x3 convolution, as StackGAN's generators (no checkerboard of transposed convolutions)
    return [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(w_in, w_out, 3, 1, 1, bias=False),
            nn.BatchNorm2d(w_out), nn.ReLU(True)]


class StageOne(nn.Module):
    """(z, c) -> a 16x16 image."""

    def __init__(self, noise_dim: int, ca_dim: int, channels: int, width: int):
        super().__init__()
        self.width = width
        self.fc = nn.Sequential(nn.Linear(noise_dim + ca_dim, 4 * width * 16, bias=False),
                                nn.BatchNorm1d(4 * width * 16), nn.ReLU(True))
        self.net = nn.Sequential(*_up(4 * width, 2 * width), *_up(2 * width, width),
                                 nn.Conv2d(width, channels, 3, 1, 1), nn.Tanh())

    def forward(self, z, c):
        # -1, not len(z): an exported graph (gan export) keeps its batch size free
        return self.net(self.fc(torch.cat([z, c], 1)).view(-1, 4 * self.width, 4, 4))


class Residual(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(width, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(True),
                                 nn.Conv2d(width, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width))

    def forward(self, x):
        return F.relu(x + self.net(x))


class StageTwo(nn.Module):
    """(16x16 image, c) -> the 32x32 image: encode to 8x8, join c, residual blocks, two upsamplings."""

    def __init__(self, ca_dim: int, channels: int, width: int):
        super().__init__()
        self.encode = nn.Sequential(nn.Conv2d(channels, width, 3, 1, 1), nn.ReLU(True),
                                    nn.Conv2d(width, 2 * width, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * width),
                                    nn.ReLU(True))
        self.join = nn.Sequential(nn.Conv2d(2 * width + ca_dim, 2 * width, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(2 * width), nn.ReLU(True))
        self.residual = nn.Sequential(Residual(2 * width), Residual(2 * width))
        self.decode = nn.Sequential(*_up(2 * width, width), *_up(width, width // 2 or 1),
                                    nn.Conv2d(width // 2 or 1, channels, 3, 1, 1), nn.Tanh())

    def forward(self, image, c):
        h = self.encode(image)
        h = self.join(torch.cat([h, c[:, :, None, None].expand(-1, -1, *h.shape[-2:])], 1))
        return self.decode(self.residual(h))


class StackGenerator(nn.Module):
    """z = (noise, stage I's CA noise, stage II's CA noise); ``labels`` are caption word indices (N, words).
    Returns the 32x32 image, or with ``stage=1`` the 16x16 one upscaled (nearest) to 32x32, so that both stages'
    samples have one shape."""

    def __init__(self, vocab_size: int, num_classes: int, noise_dim: int, ca_dim: int, channels: int,
                 word_dim: int, text_dim: int, g_width: int):
        super().__init__()
        self.noise_dim, self.ca_dim = noise_dim, ca_dim
        self.text = TextEncoder(vocab_size, word_dim, text_dim, num_classes)
        self.ca1, self.ca2 = Augmentation(text_dim, ca_dim), Augmentation(text_dim, ca_dim)
        self.stage1 = StageOne(noise_dim, ca_dim, channels, g_width)
        self.stage2 = StageTwo(ca_dim, channels, g_width)

    def split(self, z):
        return z.flatten(1).split([self.noise_dim, self.ca_dim, self.ca_dim], 1)

    def first(self, z, e):
        """Stage I: (16x16 image, mu, logvar)."""
        noise, eps1, _ = self.split(z)
        c, mu, logvar = self.ca1(e, eps1)
        return self.stage1(noise, c), mu, logvar

    def second(self, z, e, low):
        """Stage II on stage I's image: (32x32 image, mu, logvar)."""
        _, _, eps2 = self.split(z)
        c, mu, logvar = self.ca2(e, eps2)
        return self.stage2(low, c), mu, logvar

    def forward(self, z, labels=None, stage: int = 2):
        e = self.text(labels, len(z))
        low = self.first(z, e)[0]
        if stage == 1:
            return F.interpolate(low, scale_factor=2, mode="nearest")
        return self.second(z, e, low)[0]


class MatchingDiscriminator(nn.Module):
    """(image, text embedding) -> one logit: convolutions down to 4x4, the compressed embedding stacked on as
    planes, a 1x1 convolution that judges them together."""

    def __init__(self, image_size: int, channels: int, width: int, text_dim: int, cond_dim: int, classes: int = 0):
        super().__init__()
        layers, w_in, size, w = [], channels, image_size, width
        while size > 4:
            layers += [nn.Conv2d(w_in, w, 4, 2, 1, bias=w_in == channels)]
            layers += [nn.LeakyReLU(0.2, True)] if w_in == channels else [nn.BatchNorm2d(w), nn.LeakyReLU(0.2, True)]
            w_in, w, size = w, w * 2, size // 2
        self.net = nn.Sequential(*layers)
        self.compress = nn.Sequential(nn.Linear(text_dim, cond_dim), nn.LeakyReLU(0.2, True))
        self.judge = nn.Sequential(nn.Conv2d(w_in + cond_dim, w_in, 1), nn.BatchNorm2d(w_in),
                                   nn.LeakyReLU(0.2, True), nn.Conv2d(w_in, 1, 4))
        self.classify = nn.Conv2d(w_in, classes, 4) if classes else None

    def forward(self, x, e):
        """The logit, and the class logits (None without a class head)."""
        h = self.net(x)
        c = self.compress(e)[:, :, None, None].expand(-1, -1, *h.shape[-2:])
        return self.judge(torch.cat([h, c], 1)).flatten(), (None if self.classify is None
                                                            else self.classify(h).flatten(1))


class StackDiscriminators(nn.Module):
    def __init__(self, channels: int, width: int, text_dim: int, classes: int = 0):
        super().__init__()
        self.d1 = MatchingDiscriminator(16, channels, width, text_dim, text_dim // 2, classes)
        self.d2 = MatchingDiscriminator(32, channels, width // 2 or 1, text_dim, text_dim // 2, classes)


# ------------------------------------------------------------------------------------------------ training
class StackObjective(Objective):
    """Stage I (G1 with the text encoder, D1) for ``--stage1-steps`` steps, then stage II (G2, D2) with stage I
    frozen. Captions and mismatched captions are a pure function of (seed, step), so a resumed run is exact."""

    shown = ("loss_d", "loss_g", "kl", "text_acc")
    measurable = False  # --eval-every draws without captions; `gan eval` draws each class's caption
    divergence_hint = "try lower --lr-g/--lr-d"

    def __init__(self, ctx):
        super().__init__(ctx)
        args = ctx.arch_args
        self.G, self.D = ctx.nets["generator"], ctx.nets["discriminator"]
        self.latent_dim = args["noise_dim"] + 2 * args["ca_dim"]
        self.images = ctx.images[0]
        self.labels = ctx.data.labels.to(ctx.device)
        names = ctx.data.class_names
        vocabulary = vocabulary_of(names)
        self.train_ids = torch.stack([tokens(vocabulary, list(CAPTIONS[CAPTION_KEYS[class_key(c)]][0]))
                                      for c in names]).to(ctx.device)  # (classes, phrasings, words)
        self.names, self.vocabulary = names, vocabulary

    def optimizers(self):
        betas, o = (self.opts.beta1, self.opts.beta2), self.opts
        g1 = [*self.G.text.parameters(), *self.G.ca1.parameters(), *self.G.stage1.parameters()]
        g2 = [*self.G.ca2.parameters(), *self.G.stage2.parameters()]
        return {"g1": (g1, o.lr_g, betas), "d1": (list(self.D.d1.parameters()), o.lr_d, betas),
                "g2": (g2, o.lr_g, betas), "d2": (list(self.D.d2.parameters()), o.lr_d, betas)}

    def captions(self, step: int, y: torch.Tensor):
        """Word indices of a training caption of each image's class, and of a caption of another class."""
        g = torch.Generator().manual_seed(latents.mix(self.opts.seed + 11, step))
        classes, phrasings = self.train_ids.shape[:2]
        pick = torch.randint(0, phrasings, (2, len(y)), generator=g).to(y.device)
        other = (y + torch.randint(1, max(classes, 2), (len(y),), generator=g).to(y.device)) % classes
        return self.train_ids[y, pick[0]], self.train_ids[other, pick[1]]

    def step(self, step: int) -> dict:
        x, idx = self.ctx.take(self.images, self.opts.seed, self.opts.seed + 7, step)
        y = self.labels[idx.to(self.ctx.device)]
        right, wrong = self.captions(step, y)
        z = self.ctx.noise(step, len(x), self.latent_dim)
        if step < self.opts.stage1_steps:
            return self._stage(1, step, F.avg_pool2d(x, 2), y, right, wrong, z)
        return self._stage(2, step, x, y, right, wrong, z)

    def second_noise(self, step: int, z: torch.Tensor) -> torch.Tensor:
        """The mode-seeking term's other draw of each caption: a pure function of (seed, step), as z is."""
        g = torch.Generator(z.device).manual_seed(latents.mix(self.opts.seed + 13, step))
        return torch.randn(z.shape, device=z.device, generator=g)

    def _stage(self, stage: int, step: int, real, y, right, wrong, z) -> dict:
        G, D = self.G, (self.D.d1 if stage == 1 else self.D.d2)
        if stage == 2:
            G.text.eval(), G.ca1.eval(), G.stage1.eval()  # frozen: its batch norms keep their statistics
        with torch.set_grad_enabled(stage == 1):
            e = G.text(right, len(z))
            low, mu, logvar = G.first(z, e)
        with torch.no_grad():
            e_wrong = G.text(wrong, len(z))
        if stage == 2:
            fake, mu, logvar = G.second(z, e, low)
        else:
            fake = low
        e_d, e_wrong_d = e.detach(), e_wrong.detach()
        bce = F.binary_cross_entropy_with_logits
        (real_out, real_class), (wrong_out, _), (fake_out, fake_class) = \
            D(real, e_d), D(real, e_wrong_d), D(fake.detach(), e_d)
        loss_d = bce(real_out, torch.ones_like(real_out)) + 0.5 * (bce(wrong_out, torch.zeros_like(wrong_out))
                                                                   + bce(fake_out, torch.zeros_like(fake_out)))
        stats = {}
        if real_class is not None:
            loss_d = loss_d + self.opts.class_weight * (F.cross_entropy(real_class, y)
                                                        + F.cross_entropy(fake_class, y))
            stats["class_acc_fake"] = (fake_class.argmax(1) == y).float().mean().detach()
        self.ctx.optimize(f"d{stage}", loss_d)
        gen_out, gen_class = D(fake, e_d)
        kl = kl_term(mu, logvar)
        kl_weight = self.opts.ca_kl_weight if stage == 1 or self.opts.stage2_kl_weight is None \
            else self.opts.stage2_kl_weight
        loss_g = bce(gen_out, torch.ones_like(gen_out)) + kl_weight * kl
        if self.opts.mode_seeking > 0:
            z2 = self.second_noise(step, z)
            with torch.set_grad_enabled(stage == 1):
                low2 = G.first(z2, e)[0]
            other = low2 if stage == 1 else G.second(z2, e, low2)[0]
            seeking = losses.mode_seeking(fake, other, z, z2)
            loss_g = loss_g + self.opts.mode_seeking * seeking
            stats["mode_seeking"] = seeking.detach()
        if gen_class is not None:
            loss_g = loss_g + self.opts.class_weight * F.cross_entropy(gen_class, y)
        if stage == 1:
            logits = G.text.classify(e)
            loss_g = loss_g + self.opts.text_weight * F.cross_entropy(logits, y)
            stats["text_acc"] = (logits.argmax(1) == y).float().mean().detach()
        self.ctx.optimize(f"g{stage}", loss_g)
        return stats | {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(), "kl": kl.detach(),
                        "stage": torch.tensor(float(stage)),
                        "d_real": torch.sigmoid(real_out).mean().detach(),
                        "d_fake": torch.sigmoid(fake_out).mean().detach()}

    @torch.no_grad()
    def grid(self, sampler):
        """One row per class (its first training phrasing): four seeds' stage I (upscaled), then stage II."""
        n, ids = 4, self.train_ids[:, 0]
        z = latents.latents([(self.opts.seed, i) for i in range(n)], self.latent_dim).to(self.ctx.device)
        rows = []
        for c in range(len(ids)):
            caption = ids[c:c + 1].expand(n, -1)
            rows += [sampler(z, caption, stage=1), sampler(z, caption, stage=2)]
        return torch.cat(rows).float().cpu(), 2 * n

    def export_config(self) -> dict:
        return {"task": "text-to-image", "latent_dim": self.latent_dim, "class_names": list(self.names),
                "vocabulary": self.vocabulary,
                "prompts": {c: list(CAPTIONS[CAPTION_KEYS[class_key(c)]][0][:1]) for c in self.names}}

    def record(self) -> dict:
        head = f", class head x{self.opts.class_weight:g}" if self.opts.class_weight > 0 else ""
        seeking = f", mode-seeking x{self.opts.mode_seeking:g}" if self.opts.mode_seeking > 0 else ""
        return {"loss": "ns, matching-aware" + head + seeking, "stage1_steps": self.opts.stage1_steps}

    export_dtype = torch.float16


# ------------------------------------------------------------------------------------------------ the family
@register
class StackGAN(Family):
    name = "stackgan"
    description = "StackGAN (Zhang et al. 2017): captions -> 16x16 stage I -> 32x32 stage II, for Fashion-MNIST"
    model_class = StackGANModel
    exported = ("generator",)
    options = OPTIMISER + group(
        "stackgan options",
        Option("stage1_steps", int, 2000, "Steps of stage I (with the text encoder); the rest train stage II "
                                          "with stage I frozen.", check=at_least(1), resume=True),
        Option("ca_kl_weight", float, 2.0, "Weight of the conditioning augmentation's KL term.", check=non_negative,
               resume=True),
        Option("stage2_kl_weight", float, None, "Weight of stage II's KL term, when it should differ from "
                                                "--ca-kl-weight: stage II also sees stage I's image, so a full "
                                                "weight can squeeze its own condition to the prior.",
               check=non_negative, resume=True),
        Option("text_weight", float, 1.0, "Weight of the text encoder's auxiliary caption -> class loss.",
               check=non_negative, resume=True),
        Option("class_weight", float, 0.0, "Weight of the discriminators' class head (TAC-GAN): D names each "
                                           "image's caption class, G is rewarded when its image is named as its "
                                           "caption's; 0 builds no head.", check=non_negative, resume=True),
        Option("mode_seeking", float, 0.0, "Weight of the mode-seeking term (MSGAN, Mao et al. 2019): G also draws "
                                           "each caption from a second noise and is rewarded for images as far "
                                           "apart as the noises, so that a caption draws more than one picture. "
                                           "0: off.", check=non_negative, resume=True),
        Option("noise_dim", int, 32, "Size of the noise z (the sampler's z adds two CA draws).", check=at_least(1),
               resume=True),
        Option("ca_dim", int, 16, "Size of the condition c of each stage.", check=at_least(1), resume=True),
        Option("stack_width", int, 32, "Generator and discriminator width.",
               check=at_least(2), resume=True),
    )
    defaults = {"size": 32}
    summary = ("A StackGAN (Zhang et al. 2017) drawing {images} from short captions, trained on {dataset} with "
               "gan {gan_version}: stage I draws a 16x16 image, stage II the 32x32 one from it.")

    arch_options = {"g_width": "stack_width", "d_width": "stack_width"}

    def build(self, vocab_size: int, text_classes: int, noise_dim: int = OPTION, ca_dim: int = OPTION,
              channels: int = 1, image_size: int = 32, word_dim: int = 32, text_dim: int = 64, g_width: int = OPTION,
              d_width: int = OPTION, d_classes: int = 0):
        if image_size != 32:
            raise ValueError(f"stackgan draws 32x32 images (stage I 16x16): train with --size 32, not {image_size}")
        return {"generator": StackGenerator(vocab_size, text_classes, noise_dim, ca_dim, channels, word_dim,
                                            text_dim, g_width),
                "discriminator": StackDiscriminators(channels, d_width, text_dim, d_classes)}

    def check_options(self, opts):
        if opts.ema:  # the EMA's batch norms are re-measured on caption-less draws, which no sample is
            raise OptionError("--ema is not supported by stackgan: its batch-norm statistics are measured per "
                              "caption")
        if opts.steps is not None and opts.steps <= opts.stage1_steps:  # an untrained stage II draws grey squares
            raise OptionError(f"--steps {opts.steps} would leave stage II untrained: stage I takes the first "
                              f"--stage1-steps ({opts.stage1_steps}); give more steps or fewer stage-I steps")

    def load_data(self, opts) -> TrainingData:
        data = super().load_data(opts)
        names = data.class_names or []
        unknown = [c for c in names if class_key(c) not in CAPTION_KEYS]
        if data.labels is None or unknown or len(names) < 2:
            raise ValueError(f"stackgan's captions are written for Fashion-MNIST's classes ({', '.join(CAPTIONS)}): "
                             f"{opts.data} needs labelled images of two or more of them"
                             + (f", not {', '.join(unknown)}" if unknown else ""))
        return data

    def arch_args(self, opts, data):
        classes = len(data.class_names)
        return self.option_args(opts, vocab_size=len(vocabulary_of(data.class_names)) + 1, text_classes=classes,
                                channels=data.channels, image_size=data.crop,
                                d_classes=classes if opts.class_weight > 0 else 0)

    def objective(self, ctx):
        return StackObjective(ctx)

    def pipeline_tag(self, config: dict) -> str:
        return "text-to-image"

    def card_use(self, config: dict, where: str) -> list[str]:
        """Captions the model knows (its classes' first phrasings): a model trained on two classes has not the
        vocabulary of the ten. No `gan sample` without a caption."""
        import shlex

        texts = self.default_texts(config)
        return [f"gan sample {where} --text {shlex.quote(texts[-1])} -n 16 -o samples.png",
                f"gan sample {where} --text {shlex.quote(texts[0])} --stage 1 -n 16 -o coarse.png   # stage I",
                f"gan eval {where} -n 10000   # FID etc., and how often each caption's class is drawn"]

    def check_config(self, config: dict, where) -> str | None:
        args = config.get("arch_args", {})
        why = check_vocabulary(config.get("vocabulary"), args.get("vocab_size")) \
            or check_classes(config.get("class_names"), args.get("text_classes"))
        return f"{where}: {why}" if why else None

    def text_tokens(self, config: dict, texts: list[str]) -> torch.Tensor:
        return tokens(config["vocabulary"], texts)

    def export_graphs(self, model) -> list[ExportGraph]:
        """z and the caption as word ids (what ``tokens`` makes of it; the vocabulary goes into the metadata) ->
        stage II's images."""
        ids = self.text_tokens(model.config, self.default_texts(model.config)[:2])
        graph = sampler_graph(model, "tokens", ids, f"caption word ids (batch, words), int64: 1 + the word's "
                                                    f"index in vocabulary, 0 pads; at most {MAX_WORDS} words")
        graph.dynamic["tokens"][1] = "words"
        graph.checks.append({"z": graph.inputs["z"][:1], "tokens": ids[:1, :3]})  # fewer words
        graph.metadata |= {"vocabulary": model.config["vocabulary"], "max_words": MAX_WORDS,
                           "tokenize": "lower-case the caption, split it on spaces and , . ; : ! ?, look each word "
                                       "up in vocabulary (ids start at 1), pad with 0"}
        return [graph]

    def default_texts(self, config: dict) -> list[str]:
        """What a sampler draws without --text (``gan eval``): each class's first training phrasing in turn."""
        return [CAPTIONS[CAPTION_KEYS[class_key(c)]][0][0] for c in config.get("class_names") or []]

    @torch.no_grad()
    def eval_tables(self, result: dict) -> list[Table]:
        """Beside the measures, the per-class readings: the training phrasing and the unseen phrasings at stage II,
        and stage I."""
        if "text_accuracy_per_class" not in result:
            return super().eval_tables(result)
        rows = [[c, result["text_prompts"][c][0], f"{acc:.1%}", " / ".join(result["text_prompts_unseen"][c]),
                 f"{result['text_accuracy_unseen_per_class'][c]:.1%}",
                 f"{result['text_accuracy_stage1_per_class'][c]:.1%}"]
                for c, acc in result["text_accuracy_per_class"].items()]
        return super().eval_tables(result) + [Table(
            f"captions judged as their class ({result['text_samples_per_class']} samples per class and prompt set; "
            f"the judge reads {result['feature_extractor_test_accuracy']:.1%} of real test images right)",
            ["class", "training phrasing", "stage II", "unseen phrasings", "stage II ", "stage I"], rows,
            right=(2, 4, 5))]

    def evaluate_extra(self, model, real, judge=None) -> dict:
        """How often the judge reads a caption's class in the images drawn from it: per class, from the class's
        first training phrasing and from its unseen phrasings (TEXT_SAMPLES each, seeds 1000 + class), at stage II;
        and overall at stage I. And how varied one caption's pictures are: the mean distance between pairs of their
        judge features over the same for the real images of that class (``text_diversity``: the worst class)."""
        names = model.class_names or []
        index = {class_key(c): i for i, c in enumerate(judge.class_names)} if judge is not None else {}
        if not names or not all(class_key(c) in index for c in names):
            return {"text_accuracy_note": f"the judge does not know the classes {', '.join(names)}"}
        seen = {c: list(CAPTIONS[CAPTION_KEYS[class_key(c)]][0][:1]) for c in names}
        unseen = {c: list(CAPTIONS[CAPTION_KEYS[class_key(c)]][1]) for c in names}
        out = {"text_samples_per_class": TEXT_SAMPLES, "text_prompts": seen, "text_prompts_unseen": unseen}
        spread = {}
        for key, prompts, stage in (("text_accuracy", seen, 2), ("text_accuracy_unseen", unseen, 2),
                                    ("text_accuracy_stage1", seen, 1)):
            per = {}
            for k, c in enumerate(names):
                feats, logits = drawn_from_captions(model, judge, prompts[c], k, stage)
                per[c] = round(float((logits.argmax(1) == index[class_key(c)]).float().mean()), 4)
                if key == "text_accuracy" and (ratio := class_spread_ratio(feats, real, judge, c)) is not None:
                    spread[c] = ratio
            out[key] = round(sum(per.values()) / len(per), 4)
            out[f"{key}_per_class"] = per
        return out | ({"text_diversity": min(spread.values()), "text_diversity_per_class": spread} if spread else {})
