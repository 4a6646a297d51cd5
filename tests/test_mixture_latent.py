"""dcgan --mixture K (DeLiGAN's Gaussian-mixture latent): G's noise is read as one of K Gaussians with learnt
centres."""
import json

import pytest
import torch
from safetensors.torch import load_file
from tiny_families import assert_train_refused, train_split_and_whole

import gancli
from gancli.families.dcgan import MixtureLatent
from gancli.training.trainer import Trainer, TrainOptions


def _options(data, out, **kw):
    base = dict(data=str(data), out=str(out), steps=4, batch_size=8, g_width=4, d_width=4, latent_dim=8,
                sample_every=100, checkpoint_every=2, log_every=1, device="cpu", mixture=5, mixture_sigma=0.5)
    return TrainOptions(**(base | kw))


def test_components_are_equally_likely_and_the_noise_within_keeps_unit_variance():
    torch.manual_seed(0)
    k, z = MixtureLatent(10, 4).component(torch.randn(100_000, 4))
    shares = torch.bincount(k, minlength=10) / len(k)
    assert (shares - 0.1).abs().max() < 0.005
    first = z[:, 0]
    assert abs(first.mean()) < 0.02 and abs(first.std() - 1) < 0.02
    for c in (0, 9):  # the same noise inside each component: its entry says nothing about k
        assert abs(first[k == c].mean()) < 0.05 and abs(first[k == c].std() - 1) < 0.05
        assert first[k == c].abs().max() <= 3 ** 0.5 + 1e-4  # uniform on [-sqrt 3, sqrt 3]


def test_steering_lands_in_the_component_asked_for():
    m, g = MixtureLatent(7, 4), torch.Generator().manual_seed(0)
    for k in (0, 3, 6):
        assert (m.component(m.steer(torch.randn(1000, 4), k, generator=g))[0] == k).all()


def test_a_sample_lies_near_its_components_centre():
    m = MixtureLatent(3, 64, sigma=0.2)
    z = torch.randn(500, 64)
    k, _ = m.component(z)
    out = m(z)
    distances = torch.cdist(out, m.centres.detach())
    assert torch.equal(distances.argmin(1), k)  # centres ~1 apart per entry; sigma 0.2: no overlap in 64 dimensions


def test_mixture_trains_resumes_exactly_and_exports_its_centres(image_folder, tmp_path):
    export, weights = train_split_and_whole(lambda out, **kw: _options(image_folder, out, **kw), tmp_path)
    assert weights["generator.mixture.centres"].shape == (5, 8)
    args = json.loads((export / "config.json").read_text())["arch_args"]
    assert args["mixture"] == 5 and args["mixture_sigma"] == 0.5

    m = gancli.load(export, device="cpu")
    first, again = m.sample(6, seed=3), m.sample(6, seed=3)
    assert first.shape == (6, 1, 28, 28) and torch.equal(first, again)  # still a pure function of (seed, i)


def test_centres_learn(image_folder, tmp_path):
    t = Trainer(_options(image_folder, tmp_path / "r", steps=3))
    start = t.nets["generator"].mixture.centres.detach().clone()
    t.run()
    assert not torch.equal(start, t.nets["generator"].mixture.centres.detach())


def test_a_model_without_mixture_has_no_centres(image_folder, tmp_path):
    export = Trainer(_options(image_folder, tmp_path / "r", steps=1, mixture=0, mixture_sigma=1.0)).run()
    assert not any("mixture" in k for k in json.loads((export / "config.json").read_text())["arch_args"])
    assert not any("mixture" in k for k in load_file(export / "model.safetensors"))


@pytest.mark.parametrize("args, message", [
    (["--mixture", "1"], "error: --mixture must be 0 (off) or between 2 and 1000"),
    (["--mixture", "4", "--codes", "3"], "error: --mixture and --codes both read z's first entries"),
    (["--mixture-sigma", "0.5"], "error: --mixture-sigma is the spread of each --mixture Gaussian: give --mixture K"),
    (["--mixture", "4", "--mixture-sigma", "0"], "error: --mixture-sigma must be"),
    (["--arch", "cyclegan", "--mixture", "3"], "error: --mixture is not an option of cyclegan"),
])
def test_mixture_is_refused_in_one_line_where_it_cannot_apply(image_folder, tmp_path, args, message):
    assert_train_refused(image_folder, tmp_path / "r", args, message)


def test_a_mixture_generator_exports_to_onnx(image_folder, tmp_path):
    pytest.importorskip("onnxruntime")
    from typer.testing import CliRunner

    from gancli.cli import app

    export = Trainer(_options(image_folder, tmp_path / "r", steps=1)).run()
    r = CliRunner().invoke(app, ["export", str(export), "-o", str(tmp_path / "g.onnx")])
    assert r.exit_code == 0 and "max |difference| from PyTorch" in r.output, r.output
