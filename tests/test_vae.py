"""The VAE: encoding real images, walks between them, and the test ELBO `gan eval` adds."""
import numpy as np
import pytest
import torch
from PIL import Image
from tiny_families import _digit_file, needs_mnist, run, vae_dir  # noqa: F401 (fixtures)

import gancli


# ------------------------------------------------------------------------------------------------ the VAE
@needs_mnist
def test_vae_walks_between_two_real_images(vae_dir, tmp_path):
    a, b = _digit_file(tmp_path / "a.png", 0), _digit_file(tmp_path / "b.png", 1)
    r = run("interpolate", vae_dir, "--between", a, b, "--steps", 5, "-o", tmp_path / "between.png", "--scale", 1)
    assert r.exit_code == 0, r.output
    assert "between 2 images" in r.output
    with Image.open(tmp_path / "between.png") as im:
        assert im.size == (5 * 30 + 2, 2 * 30 + 2)  # 5 frames a -> b, then b itself: no loop back
    m = gancli.load(vae_dir, device="cpu")
    x = torch.from_numpy(np.asarray(Image.open(a), dtype=np.float32) / 127.5 - 1)[None, None]
    z = m.encode(x)
    assert z.shape == (1, 4)
    first = torch.cat(list(m.generate(z)))
    frame = torch.from_numpy(np.asarray(Image.open(tmp_path / "between.png"), dtype=np.float32))[2:30, 2:30]
    assert (frame - (first[0, 0] + 1) * 127.5).abs().max() <= 1  # frame 0 decodes the first image's encoding


@needs_mnist
def test_between_errors(vae_dir, tiny_model_dir, tmp_path):
    a = _digit_file(tmp_path / "a.png", 0)
    r = run("interpolate", vae_dir, "--between", a, "-o", tmp_path / "x.gif")
    assert r.exit_code == 2 and "two images or more" in r.output
    r = run("interpolate", vae_dir, a, a, "-o", tmp_path / "x.gif")
    assert r.exit_code == 2 and "--between" in r.output
    r = run("interpolate", tiny_model_dir, "--between", a, a, "-o", tmp_path / "x.gif")
    assert r.exit_code == 2 and "encoding images is for vae models" in r.output
    (tmp_path / "bad.png").write_text("not an image")
    r = run("interpolate", vae_dir, "--between", a, tmp_path / "bad.png", "-o", tmp_path / "x.gif")
    assert r.exit_code == 2 and "bad.png" in r.output


def test_vae_samples_like_any_model(vae_dir, tmp_path):
    r = run("sample", vae_dir, "-n", 4, "-o", tmp_path / "v.png")
    assert r.exit_code == 0
    m = gancli.load(vae_dir, device="cpu")
    x = m.sample(3, seed=5)
    assert x.shape == (3, 1, 28, 28) and torch.equal(x, m.sample(3, seed=5)) and -1 <= x.min() and x.max() <= 1


def test_eval_reports_the_vae_test_elbo(vae_dir, shared_references):
    from gancli.evaluation.evaluate import evaluate

    r = evaluate(str(vae_dir), "mnist", n=200, device="cpu")
    assert r["elbo_images"] == 10000 and r["elbo"] < 0
    assert r["elbo"] == pytest.approx(-(r["reconstruction_nats"] + r["kl_nats"]), abs=0.01)
    assert 0 < r["reconstruction_nats"] < 784 * 5 and r["fid"] > 0

