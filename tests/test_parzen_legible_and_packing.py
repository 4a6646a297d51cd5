"""Issue 13's measures and training option: the Parzen-window log-likelihood (Goodfellow et al. 2014, Table 1), the
legible share of samples, and PacGAN packing (Lin et al. 2018)."""
import json
import math

import pytest
import torch
from conftest import SHARED, tiny_config
from tiny_families import assert_train_refused, train_split_and_whole
from typer.testing import CliRunner

import gancli
from gancli.cli import app
from gancli.evaluation.evaluate import Reference, compare, judged
from gancli.families import losses
from gancli.quality import formulas
from gancli.quality.judges import Classifier, Judge
from gancli.training.trainer import Trainer, TrainOptions
from gancli.use.model import GANModel

runner = CliRunner()


# ---------------------------------------------------------------------------------------------- Parzen window
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


# ---------------------------------------------------------------------------------------------- legible share
def _judge(num_classes=3):
    torch.manual_seed(0)
    net = Classifier(num_classes, widths=(4, 4, 4))
    return Judge(net, {"name": "tiny-judge", "class_names": [str(i) for i in range(num_classes)]}, torch.device("cpu"))


def test_legible_share_counts_images_the_judge_is_at_least_90_percent_sure_of():
    assert formulas.legible_share(torch.tensor([0.95, 0.5, 0.9, 0.89])) == 0.5
    judge = _judge()
    images = torch.rand(6, 3, 28, 28) * 2 - 1
    _, classes, confidence = judged(judge, images[:, :1])
    _, logits = judge.run(images[:, :1])
    assert torch.allclose(confidence, logits.softmax(1).max(1).values) and torch.equal(classes, logits.argmax(1))
    # Stacked-MNIST: legible only if every channel's digit is
    _, _, stacked = judged(judge, images, stack=3)
    per_channel = torch.stack([judge.run(images[:, c:c + 1])[1].softmax(1).max(1).values for c in range(3)])
    assert torch.allclose(stacked, per_channel.min(0).values)


def test_compare_reports_the_legible_share_beside_the_real_images_one():
    g = torch.Generator().manual_seed(0)
    ref = Reference("real", _judge(), torch.randn(40, 8, generator=g), labels=torch.arange(40) % 3, num_classes=3,
                    confidence=torch.tensor([0.99] * 30 + [0.4] * 10))
    result = compare(ref, torch.randn(20, 8, generator=g), torch.arange(20) % 3, kid_subsets=2,
                     confidence=torch.tensor([0.95] * 5 + [0.6] * 15))
    assert (result["legible_share"], result["real_legible_share"]) == (0.25, 0.75)
    assert "legible_share" not in compare(ref, torch.randn(20, 8, generator=g), torch.arange(20) % 3, kid_subsets=2)


def test_the_model_card_shows_the_legible_share_and_the_real_images_one():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("publish_zoo", Path(__file__).parents[1] / "bench" / "publish_zoo.py")
    publish = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(publish)
    r = {"command": "gan eval x", "samples": 10, "seed": 0, "real_images": 10000, "seconds": 1, "device": "cpu",
         "feature_extractor": "classifier-mnist", "feature_extractor_test_accuracy": 0.99, "fid": 1.0,
         "classes_covered": 10, "num_classes": 10, "kl": 0.01, "legible_share": 0.8123, "real_legible_share": 0.9876,
         "parzen_log_likelihood": 225.1, "parzen_standard_error": 2.03, "parzen_sigma": 0.1, "parzen_samples": 10000,
         "parzen_validation_images": 10000, "parzen_test_images": 10000}
    card = publish.results_section(r)
    assert "| legible share (judge's confidence ≥ 0.9; real test images: 98.8%) | 81.2% |" in card
    assert "225.10 ± 2.03" in card


# ---------------------------------------------------------------------------------------------- PacGAN
def _options(data, out, **kw):
    base = dict(data=str(data), out=str(out), steps=4, batch_size=8, g_width=4, d_width=4, latent_dim=8,
                sample_every=100, checkpoint_every=2, log_every=2, device="cpu", pack=2)
    return TrainOptions(**(base | kw))


def test_pack_2_trains_resumes_and_exports_a_generator_that_samples(image_folder, tmp_path):
    export, b = train_split_and_whole(lambda out, **kw: _options(image_folder, out, **kw), tmp_path)
    assert b["discriminator.net.0.weight"].shape[1] == 2  # one grey channel x 2 samples
    assert json.loads((export / "config.json").read_text())["arch_args"]["pack"] == 2
    m = gancli.load(export, device="cpu")
    assert m.sample(3, seed=0).shape == (3, 1, 28, 28)
    with pytest.raises(ValueError, match="pack"):  # a resume must keep the packing
        Trainer(_options(image_folder, tmp_path / "b", steps=6, resume=True, pack=1))


def test_conditional_pack_packs_each_images_label_planes_with_it(image_folder, tmp_path):
    t = Trainer(_options(image_folder, tmp_path / "c", steps=1, conditional=True))
    assert t.nets["discriminator"].net[0].in_channels == (1 + 2) * 2  # (grey + 2 class planes) x 2 samples
    t.run()


def test_packed_discriminators_give_one_logit_per_pack():
    from gancli.families import catalog
    x = torch.rand(6, 1, 28, 28) * 2 - 1
    for arch, args in (("dcgan", {"d_width": 4}), ("mlp", {"d_hidden": [8]}), ("stylegan", {"d_width": 4})):
        size = 32 if arch == "stylegan" else 28
        d = catalog.get(arch).build(image_size=size, channels=1, pack=3, **args)["discriminator"].eval()
        assert d(torch.nn.functional.interpolate(x, size=size)).shape == (2,), arch


def test_wgan_gp_with_packs_takes_one_gradient_norm_per_pack():
    # a linear critic on a pack of two 1-pixel images with weights (0.6, 0.8): |grad| = 1 per pack, so no penalty;
    # per image the norms would be 0.6 and 0.8
    w = torch.tensor([0.6, 0.8])
    critic = lambda x, labels=None: x.reshape(len(x) // 2, 2) @ w
    real, fake = torch.randn(4, 1), torch.randn(4, 1)
    assert float(losses.gradient_penalty(critic, real, fake, pack=2)) == pytest.approx(0, abs=1e-12)
    single = lambda x, labels=None: x[:, 0] * 0.6
    assert float(losses.gradient_penalty(single, real, fake)) == pytest.approx(0.16)


@pytest.mark.parametrize("args, message", [
    (["--pack", "3"], "error: --batch-size 8 must be a multiple of --pack 3"),
    (["--pack", "9"], "error: --pack must be between 1 and 8"),
    (["--arch", "acgan", "--pack", "2"], "error: --pack is not an option of acgan"),
    (["--arch", "began", "--pack", "2"], "error: --pack is not an option of began"),
])
def test_pack_is_refused_in_one_line_where_it_cannot_apply(image_folder, tmp_path, args, message):
    assert_train_refused(image_folder, tmp_path / "r", args, message)
