"""The Parzen-window log-likelihood of issue 13 (Goodfellow et al. 2014, Table 1): the closed form, the choice of
sigma, the protocol on MNIST and `gan eval --parzen`'s refusals."""
import math

import pytest
import torch
from conftest import SHARED, tiny_config
from typer.testing import CliRunner

import gancli
from gancli.cli import app
from gancli.quality import formulas
from gancli.use.model import GANModel

runner = CliRunner()


def _gauss_log_density(x, mu, sigma):
    d = x.numel()
    return -((x - mu) ** 2).sum() / (2 * sigma ** 2) - d / 2 * math.log(2 * math.pi * sigma ** 2)


def test_parzen_on_one_and_two_centres_is_the_gaussian_density_in_closed_form():
    g = torch.Generator().manual_seed(0)
    mu = torch.rand(2, 784, generator=g, dtype=torch.float64)
    x = torch.rand(3, 784, generator=g, dtype=torch.float64)
    sigma = 0.2
    one = formulas.parzen_log_likelihoods(x, mu[:1], [sigma])[0]
    assert torch.allclose(one, torch.stack([_gauss_log_density(q, mu[0], sigma) for q in x]), rtol=1e-12)
    # two centres: log(1/2 N(x; mu_1) + 1/2 N(x; mu_2)); the exponents are hundreds of nats, where a plain exp()
    # underflows to 0 and the log to -inf
    two = formulas.parzen_log_likelihoods(x, mu, [sigma], chunk=1)[0]
    expected = torch.stack([torch.logaddexp(_gauss_log_density(q, mu[0], sigma), _gauss_log_density(q, mu[1], sigma))
                            - math.log(2) for q in x])
    naive = torch.exp(-((x[:, None] - mu[None]) ** 2).sum(-1) / (2 * sigma ** 2)).sum(1)
    assert (naive == 0).all() and torch.isfinite(two).all()
    assert torch.allclose(two, expected, rtol=1e-12)
    # chunking changes nothing
    assert torch.allclose(formulas.parzen_log_likelihoods(x, mu, [sigma], chunk=2)[0], two, rtol=1e-12)


def test_sigma_is_the_grid_value_that_the_validation_images_like_best_and_the_score_has_its_standard_error():
    # one centre at 0 and validation points at distance r: mean LL(s) = -r^2 / 2s^2 - d/2 log(2 pi s^2), highest at
    # s = r / sqrt(d); put that on the 4th grid value
    d, target = 784, formulas.PARZEN_SIGMAS[3]
    directions = torch.nn.functional.normalize(torch.randn(50, d, generator=torch.Generator().manual_seed(1),
                                                           dtype=torch.float64), dim=1)
    validation = directions * target * math.sqrt(d)
    sigma, per_sigma = formulas.parzen_select_sigma(torch.zeros(1, d), validation)
    assert sigma == target and max(per_sigma) == per_sigma[3] and len(per_sigma) == 10
    assert formulas.PARZEN_SIGMAS[0] == pytest.approx(0.1) and formulas.PARZEN_SIGMAS[-1] == pytest.approx(1.0)
    # test points at two distances: the mean and std / sqrt(n) of their closed-form log-likelihoods
    test = torch.cat([directions[:2] * 3.0, directions[2:4] * 5.0])
    ll = torch.tensor([_gauss_log_density(q, torch.zeros(d, dtype=torch.float64), sigma) for q in test])
    mean, se = formulas.parzen_score(torch.zeros(1, d), test, sigma)
    assert mean == pytest.approx(float(ll.mean()), rel=1e-12)
    assert se == pytest.approx(float(ll.std(correction=0) / 2), rel=1e-9)


@pytest.mark.skipif(not (SHARED / "mnist").is_dir(), reason="needs ../shared/data/mnist")
def test_parzen_protocol_on_mnist_holds_out_the_last_training_images_and_scores_the_test_set(tiny_model_dir):
    from gancli.evaluation.evaluate import parzen

    model = gancli.load(tiny_model_dir, device="cpu")
    r = parzen(model, SHARED / "mnist", n=16, seed=0)
    assert (r["parzen_samples"], r["parzen_validation_images"], r["parzen_test_images"]) == (16, 10000, 10000)
    best = max(r["parzen_validation_log_likelihood"], key=r["parzen_validation_log_likelihood"].get)
    assert float(best) == pytest.approx(r["parzen_sigma"], abs=1e-4)
    assert r["parzen_log_likelihood"] < 0 and r["parzen_standard_error"] > 0  # random blobs explain no digit
    # the scale beside it: as many real training images in the samples' place explain the test digits better
    assert r["parzen_real_images"] == 16 and r["parzen_real_log_likelihood"] > r["parzen_log_likelihood"] + 50


@pytest.mark.skipif(not (SHARED / "mnist").is_dir(), reason="needs ../shared/data/mnist")
def test_the_real_images_parzen_scale_is_computed_once_per_data_set(tiny_model_dir, monkeypatch):
    """The scale depends on the data alone: a second --parzen (any model) reads it from the evaluation cache."""
    from gancli.evaluation.evaluate import parzen
    from gancli.quality import formulas

    scored = []
    real_score = formulas.parzen_score
    monkeypatch.setattr(formulas, "parzen_score", lambda *a, **k: scored.append(1) or real_score(*a, **k))
    model = gancli.load(tiny_model_dir, device="cpu")
    first = parzen(model, SHARED / "mnist", n=16, seed=0)
    assert len(scored) == 2  # the samples, then the real images
    second = parzen(model, SHARED / "mnist", n=16, seed=1)
    assert len(scored) == 3 and second["parzen_real_log_likelihood"] == first["parzen_real_log_likelihood"]
    uncached = parzen(model, SHARED / "mnist", n=16, seed=1, cache=False)
    assert len(scored) == 5 and uncached["parzen_real_log_likelihood"] == first["parzen_real_log_likelihood"]


@pytest.mark.parametrize("size, channels, why", [(32, 1, "28x28 grey"), (28, 3, "28x28 grey")])
def test_parzen_refuses_other_images_in_one_line(tmp_path, size, channels, why):
    folder = GANModel.from_config(tiny_config(size=size, channels=channels)).save_pretrained(tmp_path / "m")
    r = runner.invoke(app, ["eval", str(folder), "--real", "mnist", "-n", "8", "--parzen"])
    assert r.exit_code == 2 and r.output.startswith("error: --parzen is the ") and why in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_parzen_refuses_data_without_a_held_out_split(tiny_model_dir, image_folder):
    r = runner.invoke(app, ["eval", str(tiny_model_dir), "--real", str(image_folder), "-n", "8", "--parzen"])
    assert r.exit_code == 2 and r.output.startswith("error: --parzen needs a data set with training and test splits")
