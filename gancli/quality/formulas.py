"""Sample-quality measures on features that were computed offline (see ``gancli.quality.judges``).

Fréchet distance and KID come from torchmetrics: our judge embeds each image once, and the embeddings are handed to
torchmetrics through an identity "feature extractor", so the statistics are the maintained ones and no image is
embedded twice. Precision/recall (Kynkäänniemi et al., 2019, k-NN manifolds) is not in torchmetrics and is written
out here, with density and coverage (Naeem et al., 2020), which read the same real k-NN balls. ``nearest_labels``
is a 1-nearest-neighbour classifier in pixel space (~97% on MNIST).
"""
from __future__ import annotations

import math
import warnings

import torch


def _flat(images: torch.Tensor) -> torch.Tensor:
    x = images.float()
    if images.dtype == torch.uint8:
        x = x / 127.5 - 1.0
    return x.flatten(1)


@torch.no_grad()
def nearest_neighbours(queries: torch.Tensor, reference: torch.Tensor, chunk: int = 1024):
    """For each query image, the index of and distance to the closest reference image (L2 in [-1, 1] pixels)."""
    ref = _flat(reference)
    ref_sq = (ref * ref).sum(1)
    idx, dist = [], []
    for q in _flat(queries).split(chunk):
        d2 = (q * q).sum(1, keepdim=True) - 2 * q @ ref.T + ref_sq
        best = d2.min(1)
        idx.append(best.indices)
        dist.append(best.values.clamp_min(0).sqrt())
    return torch.cat(idx), torch.cat(dist)


def nearest_labels(queries, reference, reference_labels) -> torch.Tensor:
    return reference_labels[nearest_neighbours(queries, reference)[0]]


def class_histogram(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    return torch.bincount(labels, minlength=num_classes).float() / max(len(labels), 1)


def kl_divergence(p: torch.Tensor, q: torch.Tensor, eps: float = 1e-12) -> float:
    """KL(p || q) in nats, e.g. p = sample class histogram, q = real class histogram."""
    p, q = p.double(), q.double()
    mask = p > 0
    return float((p[mask] * (p[mask] / q[mask].clamp_min(eps)).log()).sum())


def coverage_report(labels: torch.Tensor, real_labels: torch.Tensor, num_classes: int) -> dict:
    p, q = class_histogram(labels, num_classes), class_histogram(real_labels, num_classes)
    return {"classes_covered": int((p > 0).sum()), "num_classes": num_classes, "kl": round(kl_divergence(p, q), 4),
            "smallest_class_share": round(float(p.min()), 4), "largest_class_share": round(float(p.max()), 4),
            "histogram": [round(float(v), 4) for v in p], "uniform_kl_bound": round(math.log(num_classes), 4)}


LEGIBLE = 0.9  # the judge's probability of its class above which an image counts as legible


def legible_share(confidence: torch.Tensor, threshold: float = LEGIBLE) -> float:
    """Share of images whose judge gives its chosen class a probability of at least ``threshold``: a digit that
    reads as one class, not a smudge between several. Coverage and KL only count argmaxes, which any blob has."""
    return float((confidence >= threshold).float().mean()) if len(confidence) else 0.0


class _Given(torch.nn.Module):
    """Identity "feature extractor": the inputs already are features."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, x):
        return x


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """FID between two sets of feature vectors (N, D): |mu_r - mu_f|^2 + Tr(S_r + S_f - 2 (S_r S_f)^1/2)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    fid = FrechetInceptionDistance(feature=_Given(real.shape[1]))
    fid.update(real.double(), real=True)
    fid.update(fake.double(), real=False)
    return float(fid.compute())


def kernel_distance(real: torch.Tensor, fake: torch.Tensor, subsets: int = 100, subset_size: int = 1000,
                    seed: int = 0) -> tuple[float, float]:
    """KID (cubic-polynomial-kernel MMD^2, unbiased): mean and std over random subsets, reproducible per seed."""
    from torchmetrics.image.kid import KernelInceptionDistance

    size = min(subset_size, len(real), len(fake))
    with warnings.catch_warnings():  # its note that KID keeps every feature vector: ours are 128 floats each
        warnings.simplefilter("ignore")
        kid = KernelInceptionDistance(feature=_Given(real.shape[1]), subsets=subsets, subset_size=size)
    kid.update(real.double(), real=True)
    kid.update(fake.double(), real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = kid.compute()
    return float(mean), float(std)


def _kth_neighbour_radius(x: torch.Tensor, k: int, chunk: int = 2048) -> torch.Tensor:
    """Distance from each row of x to its k-th nearest other row."""
    radii = []
    for q in x.split(chunk):
        radii.append(torch.cdist(q, x).kthvalue(k + 1, dim=1).values)  # +1: the point itself is at distance 0
    return torch.cat(radii)


def _inside(queries: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    """For each query: is it within radius of at least one centre?"""
    hits = []
    for q in queries.split(chunk):
        hits.append((torch.cdist(q, centres) <= radii[None]).any(1))
    return torch.cat(hits)


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al., 2019).

    Each set's manifold is the union of balls around its points reaching their k-th nearest neighbour. Precision: the
    share of samples inside the real manifold (are samples realistic?). Recall: the share of real images inside the
    samples' manifold (does the model cover the data?). Mode collapse shows as high precision, low recall."""
    m = manifold_measures(real, fake, k)
    return m["precision"], m["recall"]


def density_coverage(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Density and coverage (Naeem et al., 2020): recall's balls are drawn around the samples, so a few outlying
    samples cover much of the data (MNIST: a DCGAN with half its digits illegible has recall 0.89, real training
    digits 0.90). Both measures here use only the real images' balls. Coverage: the share of real images whose ball
    holds at least one sample (collapse and missing styles lower it; outliers cannot raise it). Density: how many
    real balls hold each sample, over k, averaged (about 1 for samples spread like the data; above 1 where samples
    crowd the data's dense regions)."""
    m = manifold_measures(real, fake, k)
    return m["density"], m["coverage"]


def manifold_measures(real: torch.Tensor, fake: torch.Tensor, k: int = 3, chunk: int = 2048) -> dict[str, float]:
    """Precision, recall, density and coverage in one pass: the first three and coverage all read which real balls
    hold each sample, so the samples-to-real distances are computed once."""
    real, fake = real.float(), fake.float()
    radii = _kth_neighbour_radius(real, k)
    covered = torch.zeros(len(real), dtype=torch.bool)
    realistic = balls = 0
    for q in fake.split(chunk):
        inside = torch.cdist(q, real) <= radii[None]
        covered |= inside.any(0)
        realistic += int(inside.any(1).sum())
        balls += int(inside.sum())
    recall = _inside(real, fake, _kth_neighbour_radius(fake, k)).float().mean()
    return {"precision": realistic / len(fake), "recall": float(recall), "density": balls / (k * len(fake)),
            "coverage": float(covered.float().mean())}


def diversity(features: torch.Tensor, pairs: int = 5000, seed: int = 0) -> float:
    """Mean distance between random pairs of feature vectors: falls towards 0 as a generator collapses."""
    g = torch.Generator().manual_seed(seed)
    i = torch.randint(len(features), (pairs,), generator=g)
    j = torch.randint(len(features), (pairs,), generator=g)
    keep = i != j
    return float((features[i[keep]] - features[j[keep]]).norm(dim=1).mean()) if keep.any() else 0.0


def laplacian_energy(images: torch.Tensor) -> torch.Tensor:
    """Per image, the mean squared response of a 3x3 Laplacian on the grey image in [-1, 1]: edges and fine strokes
    raise it, blur lowers it. Images may be uint8 [0, 255] or floats in [-1, 1]."""
    x = images.float()
    if images.dtype == torch.uint8:
        x = x / 127.5 - 1
    x = x.mean(1, keepdim=True)
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)
    return torch.nn.functional.conv2d(x, kernel).pow(2).flatten(1).mean(1)


def checkerboard(grey: torch.Tensor) -> float:
    """A periodic pattern as a number, for an (H, W) grey image: the amplitude spectrum of its rows and of its
    columns at the 2- and 4-pixel periods (where x2 upsampling stages leave their pattern: sub-pixel convolutions,
    transposed convolutions) over the mean of the frequencies 2 and 3 bins either side, averaged. About 1 for
    photos and for bicubic upscaling; a checkerboard raises it (issue 25 measured 6.2 for the first srgan-x4)."""
    x = grey.double()
    ratios = []
    for axis in (0, 1):
        centred = x - x.mean(axis, keepdim=True)
        spectrum = torch.fft.rfft(centred, dim=axis).abs().mean(1 - axis)
        for period in (2, 4):
            f = x.shape[axis] // period
            near = [spectrum[f + d] for d in (-3, -2, 2, 3) if 0 <= f + d < len(spectrum)]
            ratios.append(float(spectrum[f] / torch.stack(near).mean()))
    return sum(ratios) / len(ratios)


def lattice(grey: torch.Tensor) -> float:
    """A 2-D grid of dots as a number, for an (H, W) grey image: its 2-D amplitude spectrum (Hann-windowed, so the
    image's edges do not smear energy everywhere) at every mix of the 2- and 4-pixel periods, (k H/p, l W/p) for p in
    2 and 4, over the mean of the frequencies 2 and 3 bins around each, averaged over those points. A lattice of dots
    puts its energy there, on the diagonals too, where ``checkerboard``'s row and column spectra do not look. About 1
    for photos and for bicubic upscaling."""
    x = grey.double() - grey.double().mean()
    h, w = x.shape
    window = torch.hann_window(h, periodic=False, dtype=torch.float64)[:, None] \
        * torch.hann_window(w, periodic=False, dtype=torch.float64)[None]
    spectrum = torch.fft.fft2(x * window).abs()
    points = {((k * h) // p % h, (j * w) // p % w) for p in (2, 4) for k in range(p) for j in range(p) if k or j}
    ring = [(dy, dx) for dy in range(-3, 4) for dx in range(-3, 4) if max(abs(dy), abs(dx)) >= 2]
    ratios = []
    for fy, fx in sorted(points):
        near = torch.stack([spectrum[(fy + dy) % h, (fx + dx) % w] for dy, dx in ring]).mean()
        ratios.append(float(spectrum[fy, fx] / near.clamp_min(1e-12)))
    return sum(ratios) / len(ratios)


# ------------------------------------------------------------------------------------- Parzen window (Goodfellow 2014)
PARZEN_SIGMAS = tuple(float(s) for s in torch.logspace(-1, 0, 10, dtype=torch.float64))  # the original code's grid


@torch.no_grad()
def parzen_log_likelihoods(queries: torch.Tensor, centres: torch.Tensor, sigmas, chunk: int = 256) -> torch.Tensor:
    """log p(x) of each query under a Gaussian Parzen window on ``centres``, for every sigma: (len(sigmas), n).

    p(x) = 1/N sum_i N(x; mu_i, sigma^2 I), so log p(x) = logsumexp_i(-|x - mu_i|^2 / 2 sigma^2) - log N
    - d/2 log(2 pi sigma^2). The squared distances do not depend on sigma, so each chunk of queries is compared with
    the centres once (chunk x N doubles at a time: 10,000 x 10,000 x 784 never exists at once) and every sigma is
    read off it. float64 throughout: with 784 dimensions the exponents reach thousands of nats."""
    c = centres.double().flatten(1)
    c_sq = (c * c).sum(1)
    s = torch.as_tensor(list(sigmas), dtype=torch.float64)
    d = c.shape[1]
    const = -math.log(len(c)) - d / 2 * torch.log(2 * math.pi * s * s)  # (S,)
    out = []
    for q in queries.double().flatten(1).split(chunk):
        d2 = ((q * q).sum(1, keepdim=True) - 2 * q @ c.T + c_sq).clamp_min(0)  # (chunk, N)
        out.append(torch.stack([torch.logsumexp(-d2 / (2 * v * v), dim=1) for v in s.tolist()]) + const[:, None])
    return torch.cat(out, 1) if out else torch.empty(len(s), 0, dtype=torch.float64)


def parzen_select_sigma(centres: torch.Tensor, validation: torch.Tensor, sigmas=PARZEN_SIGMAS,
                        chunk: int = 256) -> tuple[float, list[float]]:
    """(the sigma of the grid whose window gives the validation images the highest mean log-likelihood, each
    sigma's mean)."""
    means = parzen_log_likelihoods(validation, centres, sigmas, chunk).mean(1)
    return float(list(sigmas)[int(means.argmax())]), [float(m) for m in means]


def parzen_score(centres: torch.Tensor, test: torch.Tensor, sigma: float, chunk: int = 256) -> tuple[float, float]:
    """(mean log-likelihood of the test images, in nats, and its standard error std / sqrt(n))."""
    ll = parzen_log_likelihoods(test, centres, [sigma], chunk)[0]
    return float(ll.mean()), float(ll.std(correction=0) / math.sqrt(len(ll)))  # numpy's std, as the original


def grey(x: torch.Tensor) -> torch.Tensor:
    """Luma (ITU-R 601) of RGB images, the grey that SSIM compares; grey images as they are."""
    return (x * torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)).sum(1, keepdim=True) \
        if x.shape[1] == 3 else x


# ------------------------------------------------------------------------------------------------ measuring
def luma(images: torch.Tensor) -> torch.Tensor:
    """uint8 RGB (N, 3, H, W) -> Y of ITU-R BT.601 in [16, 235], as float: where super-resolution papers measure."""
    w = torch.tensor([65.481, 128.553, 24.966]).view(1, 3, 1, 1) / 255
    return 16 + (images.float() * w).sum(1, keepdim=True) if images.shape[1] == 3 else images.float()


def psnr(x: torch.Tensor, y: torch.Tensor, peak: float = 255.0) -> torch.Tensor:
    """Per image, 10 log10(peak^2 / MSE)."""
    mse = (x.float() - y.float()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(peak ** 2 / mse.clamp_min(1e-10))


def ssim(x: torch.Tensor, y: torch.Tensor, peak: float = 255.0) -> torch.Tensor:
    """Per image, SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03), via torchmetrics."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    return structural_similarity_index_measure(x.float(), y.float(), data_range=peak, reduction="none")
