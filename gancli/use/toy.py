"""Toy GANs that show the theory of Goodfellow et al. 2014 on a CPU in seconds (`gan toy`, docs/theory.md).

1-D: a tiny G and D on a known density p_data. p_g is estimated on a grid by a Gaussian KDE of many G samples, and
from the two densities come the optimal discriminator D* = p_data / (p_data + p_g), the value V(D, G) of the
trained D (an integral on the grid), and the Jensen-Shannon divergence; at the optimum p_g = p_data, D* = 1/2 and
V = -log 4. The animation is the paper's Figure 1: p_data, p_g, D and D*.

2-D: the 8-Gaussian ring and the 5x5 grid, with the measure of Metz et al. 2017 (Unrolled GAN): modes covered and
the share of high-quality samples (within 3 standard deviations of a mode). Mode collapse, and two cures: PacGAN
(--pack m: D judges m samples at once) and unrolled D (--unrolled K: G's loss sees D after K more steps).

torch and matplotlib are imported inside the functions: importing this module (and starting `gan`) stays light.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field

DATA_1D = {  # name -> (component means, common standard deviation); equal weights
    "gauss": ((1.5,), 0.5),
    "bimodal": ((-1.5, 1.5), 0.4),
}
DATA_2D = {  # name -> (modes, std): Metz et al. 2017's ring; the 5x5 grid of VEEGAN and PacGAN
    "ring": (tuple((2 * math.cos(2 * math.pi * i / 8), 2 * math.sin(2 * math.pi * i / 8)) for i in range(8)), 0.05),
    "grid": (tuple((float(x), float(y)) for x in range(-4, 5, 2) for y in range(-4, 5, 2)), 0.05),
}
LOSSES = ("ns", "minimax")  # the two generator losses of the paper; V(D, G) is defined for the sigmoid D
# A 1-D z folds under a non-monotone G into spikes of p_g (infinite density where G turns); a few more noise
# dimensions blur the folds into a smooth p_g.
Z_1D = 4
Z_2D = 256
GRID_1D = (-4.0, 4.0, 801)  # where the 1-D densities are evaluated
SUPPORT = 0.05  # max|D - D*| is measured where (p_data + p_g) / 2 is at least this share of its peak
QUALITY_SIGMAS = 3.0  # a high-quality 2-D sample lies within 3 standard deviations of a mode (Metz et al. 2017)
COVER_SHARE = 0.1  # a mode is covered when it holds at least a tenth of its fair share n / modes of the samples


def _check(loss: str, steps: int, seed: int, frames: int):
    if loss not in LOSSES:
        raise ValueError(f"unknown --loss {loss!r}: use one of {', '.join(LOSSES)}")
    if not 1 <= steps <= 1_000_000:
        raise ValueError("--steps must be between 1 and 1000000")
    if not 1 <= frames <= 500:
        raise ValueError("--frames must be between 1 and 500")
    if seed < 0:
        raise ValueError("--seed must be 0 or more")


def check_1d(data: str, loss: str, steps: int, seed: int, frames: int):
    """The 1-D options' checks; torch-free, so that a wrong option is refused before anything heavy loads."""
    _check(loss, steps, seed, frames)
    if data not in DATA_1D:
        raise ValueError(f"unknown --data {data!r} for 1d: use one of {', '.join(DATA_1D)}")


def check_2d(data: str, loss: str, steps: int, seed: int, frames: int, pack: int, unrolled: int):
    """The 2-D options' checks, torch-free as check_1d's."""
    _check(loss, steps, seed, frames)
    if data not in DATA_2D:
        raise ValueError(f"unknown --data {data!r} for 2d: use one of {', '.join(DATA_2D)}")
    if not 1 <= pack <= 16:
        raise ValueError("--pack must be between 1 and 16")
    if not 0 <= unrolled <= 20:
        raise ValueError("--unrolled must be between 0 and 20")
    if pack > 1 and unrolled:
        raise ValueError("give --pack or --unrolled, not both: each is one cure, measured on its own")


def _mlp(sizes, act="lrelu"):
    import torch.nn as nn

    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append({"lrelu": lambda: nn.LeakyReLU(0.2), "relu": nn.ReLU, "tanh": nn.Tanh}[act]())
    return nn.Sequential(*layers)


def _sample_mixture(means, std: float, n: int, gen):
    import torch

    means = torch.tensor(means, dtype=torch.float32).reshape(len(means), -1)
    pick = torch.randint(len(means), (n,), generator=gen)
    return means[pick] + std * torch.randn(n, means.shape[1], generator=gen)


def _decay(opt, step: int, steps: int, lr: float):
    """Linear decay to a tenth: the last steps settle near the equilibrium instead of circling it at full speed."""
    for g in opt.param_groups:
        g["lr"] = lr * (1 - 0.9 * step / max(steps, 1))


# ------------------------------------------------------------------------------------------------ 1-D densities
def kde(samples, grid):
    """Gaussian kernel density estimate of 1-D samples on an evenly spaced grid, with Silverman's bandwidth
    h = 0.9 min(sd, IQR / 1.34) n^(-1/5). Binned: the samples are counted into the grid's cells, then the counts are
    convolved with the kernel, which is exact up to the cell width and costs no more for a million samples. The
    estimate is p_g convolved with the kernel, slightly wider than p_g (docs/theory.md says what that costs);
    samples outside the grid are counted as mass that is not on it."""
    import torch
    import torch.nn.functional as F

    s = samples.flatten().double()
    q = torch.quantile(s[:100_000], torch.tensor([0.25, 0.75], dtype=s.dtype))
    spread = min(float(s.std()), float(q[1] - q[0]) / 1.34) or float(s.std()) or 1e-3
    step = float(grid[1] - grid[0])
    h = max(0.9 * spread * len(s) ** -0.2, step)
    lo, hi = float(grid[0]) - step / 2, float(grid[-1]) + step / 2
    counts = torch.histc(s, bins=len(grid), min=lo, max=hi)  # samples outside are left out
    half = min(int(4 * h / step) + 1, len(grid) - 1)
    offsets = torch.arange(-half, half + 1, dtype=torch.float64) * step
    kernel = torch.exp(-0.5 * (offsets / h) ** 2) / (h * math.sqrt(2 * math.pi))
    dens = F.conv1d(counts[None, None], kernel.flip(0)[None, None], padding=half)[0, 0]
    return dens / len(s)


def density_1d(data: str, grid):
    import torch

    means, std = DATA_1D[data]
    g = grid.double()
    return sum(torch.exp(-0.5 * ((g - m) / std) ** 2) for m in means) / (len(means) * std * math.sqrt(2 * math.pi))


def _integral(y, grid) -> float:
    import torch

    return float(torch.trapezoid(y, grid.double()))


def theory_1d(p_data, p_g, d, grid) -> dict:
    """V(D, G), V(D*, G), the JSD and max|D - D*| from densities and D on a grid. log 0 terms are dropped where the
    density is 0 (0 log 0 = 0); D is clamped away from 0 and 1 so that log D stays finite."""
    import torch

    eps = 1e-12
    d = d.double().clamp(1e-7, 1 - 1e-7)
    total = p_data + p_g  # where both are 0, D* is undefined (no x is ever seen there): 1/2, as at the optimum
    d_star = torch.where(total > 0, p_data / total.clamp_min(1e-300), 0.5)
    value = _integral(p_data * torch.log(d) + p_g * torch.log(1 - d), grid)
    m = (p_data + p_g) / 2
    kl = lambda p: _integral(torch.where(p > eps, p * torch.log(p.clamp_min(eps) / m.clamp_min(eps)), 0 * p), grid)
    jsd = 0.5 * kl(p_data) + 0.5 * kl(p_g)
    support = m >= SUPPORT * float(m.max())
    return {"value": value, "value_gap": abs(value - _optimum()), "optimal_d_value": _optimum() + 2 * jsd,
            "jsd": jsd, "max_d_error": float((d - d_star).abs()[support].max()), "d_star": d_star}


def _optimum() -> float:
    """-log 4, taken from gancli.families.losses inside a function: torch loads only when a toy runs."""
    from gancli.families.losses import OPTIMAL_VALUE

    return OPTIMAL_VALUE


# ------------------------------------------------------------------------------------------------ 1-D training
@dataclass
class Toy1DResult:
    data: str
    loss: str
    steps: int
    seed: int
    fixed_g: bool
    history: list[dict] = field(default_factory=list)  # one row per frame: step, value, value_gap, jsd, ...
    snapshots: list[dict] = field(default_factory=list)  # curves for the frames: grid, p_data, p_g, d, d_star

    @property
    def final(self) -> dict:
        return self.history[-1]

    def to_json(self) -> dict:
        return {"kind": "1d", "data": self.data, "loss": self.loss, "steps": self.steps, "seed": self.seed,
                "fixed_g": self.fixed_g, "optimal_value": _optimum(), "final": self.final,
                "history": self.history}


@contextmanager
def one_thread():
    """The toy networks are a few thousand weights: one thread does them fastest, and more threads fight whatever
    else the machine runs (gan toy 1d took 150 s beside a training run with two threads, 14 s with one)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@one_thread()
def train_1d(data: str = "gauss", loss: str = "ns", steps: int = 1500, seed: int = 0, frames: int = 30,
             fixed_g: bool = False, batch: int = 512, lr: float = 2e-3, g_samples: int = 50_000) -> Toy1DResult:
    """Train G and D (or only D, against a fixed random G) and measure the theory's quantities at ``frames``
    evenly spaced steps, the last one at the end."""
    check_1d(data, loss, steps, seed, frames)
    import torch

    from gancli.families.losses import d_loss, g_loss

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    G, D = _mlp([Z_1D, 32, 32, 1]), _mlp([1, 64, 64, 1], act="tanh")  # tanh: a smooth D, like D*
    opt_g = torch.optim.Adam(G.parameters(), lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr, betas=(0.5, 0.999))
    means, std = DATA_1D[data]
    grid = torch.linspace(*GRID_1D[:2], GRID_1D[2])
    p_data = density_1d(data, grid)
    z_eval = torch.randn(g_samples, Z_1D, generator=gen)  # the same z every time: p_g's estimate moves only with G
    at = sorted({round(i * steps / frames) for i in range(frames + 1)} - {0} | {0})
    result = Toy1DResult(data, loss, steps, seed, fixed_g)
    for step in range(steps + 1):
        if step in at:
            _measure_1d(result, step, G, D, z_eval, grid, p_data)
        if step == steps:
            break
        _decay(opt_d, step, steps, lr)
        _decay(opt_g, step, steps, lr)
        real = _sample_mixture(means, std, batch, gen)
        z = torch.randn(batch, Z_1D, generator=gen)
        with torch.no_grad():
            fake = G(z)
        opt_d.zero_grad()
        d_loss(loss, D(real), D(fake)).backward()
        opt_d.step()
        if not fixed_g:
            opt_g.zero_grad()
            g_loss(loss, D(G(torch.randn(batch, Z_1D, generator=gen)))).backward()
            opt_g.step()
    return result


def _measure_1d(result: Toy1DResult, step: int, G, D, z_eval, grid, p_data):
    import torch

    with torch.no_grad():
        p_g = kde(G(z_eval), grid)
        d = torch.sigmoid(D(grid[:, None])).flatten()
    t = theory_1d(p_data, p_g, d, grid)
    d_star = t.pop("d_star")
    result.history.append({"step": step, **{k: round(v, 6) for k, v in t.items()}})
    shown = torch.where((p_data + p_g) >= 1e-3 * float((p_data + p_g).max()), d_star, math.nan)  # 0/0 is noise
    result.snapshots.append({"p_g": p_g.float().numpy(), "d": d.numpy(), "d_star": shown.float().numpy(),
                             "grid": grid.numpy(), "p_data": p_data.float().numpy()})


# ------------------------------------------------------------------------------------------------ 2-D
def mode_stats(samples, modes, std: float) -> dict:
    """Metz et al. 2017's measure: a sample is high quality when within QUALITY_SIGMAS std of its nearest mode; a
    mode is covered when it holds at least COVER_SHARE of its fair share of the samples (so that a few strays do
    not count as covering it)."""
    import torch

    samples = torch.as_tensor(samples, dtype=torch.float32).reshape(-1, 2)
    modes = torch.as_tensor(modes, dtype=torch.float32).reshape(-1, 2)
    if len(samples) == 0:
        raise ValueError("no samples to measure")
    dist, nearest = torch.cdist(samples, modes).min(1)
    good = dist <= QUALITY_SIGMAS * std
    counts = torch.bincount(nearest[good], minlength=len(modes))
    need = max(1, math.ceil(COVER_SHARE * len(samples) / len(modes)))
    return {"modes_covered": int((counts >= need).sum()), "num_modes": len(modes),
            "high_quality": round(float(good.float().mean()), 6), "per_mode": counts.tolist()}


@dataclass
class Toy2DResult:
    data: str
    loss: str
    steps: int
    seed: int
    pack: int
    unrolled: int
    history: list[dict] = field(default_factory=list)
    snapshots: list = field(default_factory=list)  # (step, samples as an n x 2 array)

    @property
    def final(self) -> dict:
        return self.history[-1]

    def to_json(self) -> dict:
        return {"kind": "2d", "data": self.data, "loss": self.loss, "steps": self.steps, "seed": self.seed,
                "pack": self.pack, "unrolled": self.unrolled, "std": DATA_2D[self.data][1],
                "quality_sigmas": QUALITY_SIGMAS, "final": self.final, "history": self.history}


@one_thread()
def train_2d(data: str = "ring", loss: str = "ns", steps: int = 3000, seed: int = 0, frames: int = 30,
             pack: int = 1, unrolled: int = 0, batch: int = 512, lr: float = 1e-3, unroll_lr: float = 0.01,
             n_eval: int = 2500) -> Toy2DResult:
    """Train on a 2-D mixture and measure modes covered and the high-quality share of ``n_eval`` samples at
    ``frames`` evenly spaced steps. ``pack`` > 1: PacGAN; ``unrolled`` K > 0: G's loss against D unrolled K
    differentiable SGD steps (learning rate ``unroll_lr``), D's own update unchanged.

    The networks are Metz et al. 2017's (G: z of 256, two hidden ReLU layers of 128; D: one hidden ReLU layer of
    128), with Adam at 1e-3: with these, plain training collapses onto one mode at a time and hops around the ring
    (docs/theory.md has the measured runs). A deeper D, or a lower learning rate, hides the collapse; an unroll step
    of 0.1 makes the unrolled D overshoot and G diverge, so 0.01."""
    check_2d(data, loss, steps, seed, frames, pack, unrolled)
    import torch

    from gancli.families.losses import d_loss, g_loss

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    modes, std = DATA_2D[data]
    G, D = _mlp([Z_2D, 128, 128, 2], act="relu"), _mlp([2 * pack, 128, 1], act="relu")
    opt_g = torch.optim.Adam(G.parameters(), lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr, betas=(0.5, 0.999))
    z_eval = torch.randn(n_eval, Z_2D, generator=gen)
    at = sorted({round(i * steps / frames) for i in range(frames + 1)})
    result = Toy2DResult(data, loss, steps, seed, pack, unrolled)
    packed = lambda x: x.reshape(-1, 2 * pack)  # m consecutive samples side by side: one input of D
    for step in range(steps + 1):
        if step in at:
            with torch.no_grad():
                samples = G(z_eval)
            result.history.append({"step": step, **mode_stats(samples, modes, std)})
            result.snapshots.append((step, samples.numpy()))
        if step == steps:
            break
        real = _sample_mixture(modes, std, batch * pack, gen)
        with torch.no_grad():
            fake = G(torch.randn(batch * pack, Z_2D, generator=gen))
        opt_d.zero_grad()
        d_loss(loss, D(packed(real)), D(packed(fake))).backward()
        opt_d.step()
        opt_g.zero_grad()
        fake = packed(G(torch.randn(batch * pack, Z_2D, generator=gen)))
        logits = _unrolled_logits(D, loss, fake, modes, std, unrolled, unroll_lr, gen) if unrolled else D(fake)
        g_loss(loss, logits).backward()
        opt_g.step()
    return result


def _unrolled_logits(D, loss, fake, modes, std, k, lr, gen):
    """D's logits on ``fake`` after K differentiable SGD steps of D's loss (Metz et al. 2017): the graph runs
    through the steps, so G's gradient sees how D would answer its move, which discourages hopping between modes."""
    import torch
    from torch.func import functional_call

    from gancli.families.losses import d_loss

    params = dict(D.named_parameters())
    for _ in range(k):
        real = _sample_mixture(modes, std, fake.numel() // 2, gen).reshape(fake.shape)
        lossd = d_loss(loss, functional_call(D, params, (real,)), functional_call(D, params, (fake,)))
        grads = torch.autograd.grad(lossd, list(params.values()), create_graph=True)
        params = {n: p - lr * g for (n, p), g in zip(params.items(), grads)}
    return functional_call(D, params, (fake,))


# ------------------------------------------------------------------------------------------------ pictures
DPI = 80       # the figures' resolution at --scale 1 (352x368 px for 2d: small on today's screens)
SCALE = 2      # the default --scale


def _canvas(figsize, scale: float = SCALE):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=DPI * scale, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _to_image(fig):
    import numpy as np
    from PIL import Image

    fig.canvas.draw()
    return Image.fromarray(np.asarray(fig.canvas.buffer_rgba())).convert("RGB")


def frames_1d(result: Toy1DResult, scale: float = SCALE) -> list:
    """Figure 1 of Goodfellow et al. 2014, one frame per measurement: p_data (black, dotted), p_g (green), D (blue,
    dashed) and D* for the current p_g (red, dotted). ``scale``: drawn this many times larger than at DPI."""
    fig = _canvas((7, 3.8), scale)
    ax = fig.add_subplot()
    ax2 = ax.twinx()
    s0 = result.snapshots[0]
    ax.plot(s0["grid"], s0["p_data"], "k:", linewidth=2, label="p_data")
    (g_line,) = ax.plot(s0["grid"], s0["p_g"], "g-", linewidth=2, label="p_g (KDE)")
    (d_line,) = ax2.plot(s0["grid"], s0["d"], "b--", linewidth=1.5, label="D(x)")
    (ds_line,) = ax2.plot(s0["grid"], s0["d_star"], "r:", linewidth=1.5, label="D*(x) = p_data / (p_data + p_g)")
    ax2.axhline(0.5, color="0.6", linewidth=0.8)
    ax2.set_ylim(0, 1)
    ax.set_xlabel("x")
    ax.set_ylabel("density")
    ax2.set_ylabel("D")
    peak = max(float(s0["p_data"].max()), *(float(s["p_g"].max()) for s in result.snapshots))
    ax.set_ylim(0, min(peak, 3 * float(s0["p_data"].max())) * 1.1)
    lines = [*ax.get_lines(), d_line, ds_line]
    ax.legend(lines, [ln.get_label() for ln in lines], loc="upper left", fontsize=8)
    images = []
    for snap, row in zip(result.snapshots, result.history):
        g_line.set_ydata(snap["p_g"])
        d_line.set_ydata(snap["d"])
        ds_line.set_ydata(snap["d_star"])
        ax.set_title(f"{result.loss} loss, step {row['step']}:  V(D,G) = {row['value']:.3f}  (-log 4 = -1.386, "
                     f"gap {row['value_gap']:.3f})  JSD = {row['jsd']:.3f}  max|D-D*| = {row['max_d_error']:.2f}",
                     fontsize=8, loc="left")
        images.append(_to_image(fig))
    return images


def frames_2d(result: Toy2DResult, scale: float = SCALE) -> list:
    """Samples (blue) over the modes (red crosses), one frame per measurement. ``scale``: drawn this many times
    larger than at DPI."""
    modes, std = DATA_2D[result.data]
    fig = _canvas((4.4, 4.6), scale)
    ax = fig.add_subplot()
    lim = max(abs(c) for m in modes for c in m) + 1.0
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.grid(True, alpha=0.3)
    ax.scatter(*zip(*modes), marker="x", color="red", s=40, zorder=3)
    dots = ax.scatter([], [], s=2, alpha=0.4, color="tab:blue")
    cure = f", pack {result.pack}" if result.pack > 1 else f", unrolled {result.unrolled}" if result.unrolled else ""
    images = []
    for (step, samples), row in zip(result.snapshots, result.history):
        dots.set_offsets(samples)
        ax.set_title(f"{result.data}, {result.loss}{cure}, step {step}\nmodes {row['modes_covered']}/"
                     f"{row['num_modes']}, high quality {100 * row['high_quality']:.0f}%", fontsize=9)
        images.append(_to_image(fig))
    return images


PICTURES = {"gif": "animation", "webp": "animation", "png": "figure", "jpg": "figure"}


def check_picture(path) -> str:
    """What -o writes, by the one rule for outputs (``imageio.output_format``): an animation (.gif, .webp) or the
    four-moment figure (.png, .jpg); anything else is refused before training."""
    from gancli.data.imageio import output_format

    return PICTURES[output_format(path, formats=tuple(PICTURES))]


def save_picture(images: list, path) -> str:
    """.gif/.webp: the animation; .png/.jpg: four moments side by side (start, a third, two thirds, end), as the
    four panels of the paper's Figure 1."""
    from pathlib import Path

    from PIL import Image

    from gancli.data.imageio import output_format, save_animation, save_image

    path = Path(path)
    fmt = output_format(path, formats=tuple(PICTURES))
    if PICTURES[fmt] == "animation":
        save_animation(images, path, fps=8, fmt=fmt)
        return "animation"
    picks = sorted({round(i * (len(images) - 1) / 3) for i in range(4)})
    w, h = images[0].size
    strip = Image.new("RGB", (w * len(picks), h), "white")
    for i, p in enumerate(picks):
        strip.paste(images[p], (i * w, 0))
    save_image(strip, path, fmt)
    return "figure"
