"""End to end with the real, bundled zoo models, as a user runs them (dcgan-mnist from the installed package's
entry point, in a process of its own)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED
from PIL import Image

import gancli
from gancli.data.reading import read_idx
from gancli.quality.formulas import nearest_labels, nearest_neighbours

MNIST = SHARED / "mnist"


def gan(*args):
    """`gan ARGS` in this process (the first test runs the real entry point; a process start-up costs ~2 s)."""
    from typer.testing import CliRunner

    from gancli.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_gan_sample_dcgan_mnist_writes_a_grid_of_digits(tmp_path):
    p = subprocess.run([sys.executable, "-m", "gancli", "sample", "dcgan-mnist", "-n", "64", "--device", "cpu"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    with Image.open(tmp_path / "samples.png") as im:  # enlarged 3x for a screen, every pixel a 3x3 block
        assert im.size == (3 * (8 * 30 + 2), 3 * (8 * 30 + 2)) and im.mode == "L"
        grid = np.asarray(im, dtype=np.float32)[::3, ::3] / 255
    tiles = np.stack([grid[2 + 30 * r:30 * r + 30, 2 + 30 * c:30 * c + 30] for r in range(8) for c in range(8)])
    # MNIST-like: dark background, a white stroke in the middle, ~10-25% ink; and 64 different pictures
    ink = (tiles > 0.5).mean(axis=(1, 2))
    assert np.all(ink > 0.03) and np.all(ink < 0.45)
    assert tiles[:, :3, :].mean() < 0.05 and tiles[:, 10:18, 10:18].mean() > 0.2
    flat = tiles.reshape(64, -1)
    distances = np.linalg.norm(flat[:, None] - flat[None], axis=-1)[np.triu_indices(64, 1)]
    assert distances.min() > 1.0


@pytest.mark.skipif(not MNIST.is_dir(), reason="needs ../shared/data/mnist")
def test_dcgan_mnist_draws_all_ten_digits_that_look_real():
    test_x = torch.from_numpy(read_idx(MNIST / "t10k-images-idx3-ubyte.gz").copy())[:, None]
    test_y = torch.from_numpy(read_idx(MNIST / "t10k-labels-idx1-ubyte.gz").astype(np.int64))
    samples = gancli.load("dcgan-mnist", device="cpu").sample(1000, seed=123)
    counts = torch.bincount(nearest_labels(samples, test_x, test_y), minlength=10)
    assert (counts >= 40).all(), f"digit counts per class out of 1000 samples: {counts.tolist()}"
    # as close to real digits as real digits are to each other
    _, d_fake = nearest_neighbours(samples[:500], test_x[5000:])
    _, d_real = nearest_neighbours(test_x[:500], test_x[5000:])
    assert d_fake.mean() < 1.25 * d_real.mean(), (float(d_fake.mean()), float(d_real.mean()))


FASHION = SHARED / "fashion-mnist"


def _test_split(folder):
    x = torch.from_numpy(read_idx(folder / "t10k-images-idx3-ubyte.gz").copy())[:, None]
    y = torch.from_numpy(read_idx(folder / "t10k-labels-idx1-ubyte.gz").astype(np.int64))
    return x, y


@pytest.mark.skipif(not MNIST.is_dir(), reason="needs ../shared/data/mnist")
def test_gan_mnist_the_2014_mlp_gan_draws_digits():
    test_x, test_y = _test_split(MNIST)
    model = gancli.load("gan-mnist", device="cpu")
    assert model.architecture == "mlp"
    counts = torch.bincount(nearest_labels(model.sample(1000, seed=7), test_x, test_y), minlength=10)
    assert (counts >= 20).all(), counts.tolist()


@pytest.mark.skipif(not MNIST.is_dir(), reason="needs ../shared/data/mnist")
def test_cgan_mnist_label_7_gives_sevens(tmp_path):
    test_x, test_y = _test_split(MNIST)
    model = gancli.load("cgan-mnist", device="cpu")
    hits = [float((nearest_labels(model.sample(60, seed=k, label=k), test_x, test_y) == k).float().mean())
            for k in range(10)]
    assert min(hits) > 0.6 and sum(hits) / 10 > 0.85, hits
    r = gan("sample", "cgan-mnist", "--per-class", "3", "--outdir", tmp_path / "aug")
    assert r.exit_code == 0, r.output
    assert sorted(d.name for d in (tmp_path / "aug").iterdir()) == [str(k) for k in range(10)]
    assert all(len(list(d.glob("*.png"))) == 3 for d in (tmp_path / "aug").iterdir())


@pytest.mark.skipif(not FASHION.is_dir(), reason="needs ../shared/data/fashion-mnist")
def test_cgan_fashion_takes_class_names():
    test_x, test_y = _test_split(FASHION)
    model = gancli.load("cgan-fashion", device="cpu")
    assert model.class_names[7] == "Sneaker"
    for name, k in (("sneaker", 7), ("trouser", 1), ("bag", 8)):
        judged = nearest_labels(model.sample(60, seed=1, label=name), test_x, test_y)
        assert float((judged == k).float().mean()) > 0.6, (name, torch.bincount(judged, minlength=10).tolist())


def test_every_zoo_card_carries_its_measured_results():
    from gancli.store import hub
    names = hub.zoo_names()
    assert {"classifier-mnist", "classifier-fashion", "classifier-horse2zebra", "dcgan-stacked-mnist"} <= set(names)
    zoo_table = (Path(__file__).resolve().parents[1] / "docs" / "zoo.md").read_text()
    for name in names:
        config = hub.read_config(hub.zoo_dir() / name)
        card = (hub.zoo_dir() / name / "README.md").read_text()
        if config.get("task") == "classifier":
            assert config["test_accuracy"] > 0.85 and f"{config['test_accuracy']:.2%}" in card, name
            continue
        result = config["evaluation"]
        assert result["command"].startswith(f"gan eval {name} --real"), name
        assert result["command"] in card and "## Results" in card, name
        measures = ("psnr", "ssim", "sharpness") if config.get("task") == "super-resolution" else \
            ("fid", "kid", "precision", "recall")
        for key in measures:
            assert isinstance(result[key], float), (name, key)
        assert f"`{name}`" in zoo_table, name


@pytest.mark.skipif(not FASHION.is_dir(), reason="needs ../shared/data/fashion-mnist")
def test_discogan_turns_real_bags_into_shoes_and_back(tmp_path):
    from gancli.quality.judges import load_judge

    test_x, test_y = _test_split(FASHION)
    judge = load_judge("classifier-fashion")
    for source, target, direction in (([8], [7, 9], "shoe"), ([7, 9], [8], "bag")):
        keep = torch.isin(test_y, torch.tensor(source))
        for i, image in enumerate(test_x[keep][:8]):
            Image.fromarray(image[0].numpy()).save(tmp_path / f"{direction}-{i}.png")
        r = gan("translate", "discogan-bags2shoes", tmp_path, "--direction", direction, "--outdir",
                tmp_path / direction)
        assert r.exit_code == 0, r.output
        outputs = [np.asarray(Image.open(p)) for p in sorted((tmp_path / direction).glob(f"{direction}-*"))]
        assert len(outputs) == 8 and outputs[0].shape == (28, 28)  # any size in, the same size out
        judged = judge.predict(torch.from_numpy(np.stack(outputs))[:, None])
        assert float(torch.isin(judged, torch.tensor(target)).float().mean()) >= 0.75, judged.tolist()


@pytest.mark.skipif(not MNIST.is_dir(), reason="needs ../shared/data/mnist")
def test_ssgan_mnist_classifies_real_test_digits_from_files(tmp_path):
    """The semi-supervised GAN's discriminator, trained with 100 labels, read as a digit classifier by a user."""
    test_x = read_idx(MNIST / "t10k-images-idx3-ubyte.gz")
    test_y = read_idx(MNIST / "t10k-labels-idx1-ubyte.gz")
    folder = tmp_path / "digits"
    folder.mkdir()
    for i in range(40):
        Image.fromarray(test_x[i]).save(folder / f"{i:02d}.png")
    r = gan("classify", "ssgan-mnist", folder, "--csv", tmp_path / "c.csv")
    assert r.exit_code == 0, r.output
    rows = [line.split(",") for line in (tmp_path / "c.csv").read_text().splitlines()[1:]]
    assert len(rows) == 40
    predicted = {Path(f).stem: c for f, c, _ in rows}
    correct = sum(predicted[f"{i:02d}"] == str(test_y[i]) for i in range(40))
    assert correct >= 38, f"{correct}/40 digits named right"


def test_every_zoo_samplers_samples_png_is_its_seed_0_grid_not_a_pick():
    """Issue 13: a card's samples.png is a fair sample. For every model that samples from noise (labels cycled for
    conditional ones), the picture is what `model.sample(rows * 8, seed=0)` draws, to within one grey level."""
    from gancli.data.imageio import grid_image
    from gancli.store import hub

    checked = []
    for name in hub.zoo_names():
        config = hub.read_config(hub.zoo_dir() / name)
        if config.get("task") not in ("unconditional", "conditional"):
            continue
        model = gancli.load(name, device="cpu")
        nrow = config["arch_args"]["num_classes"] if model.is_conditional else 8
        drawn = np.asarray(grid_image(model.sample(nrow * 8, seed=0), nrow)).astype(int)
        with Image.open(hub.zoo_dir() / name / "samples.png") as im:
            published = np.asarray(im).astype(int)
        assert published.shape == drawn.shape, (name, published.shape, drawn.shape)
        assert np.abs(published - drawn).max() <= 1, name
        checked.append(name)
    assert {"gan-mnist", "dcgan-mnist", "cgan-fashion", "dcgan-stacked-mnist", "stylegan-fashion"} <= set(checked)


def test_a_zoo_folder_holds_a_discriminator_only_where_a_command_reads_it():
    """The tree budget: every tracked byte travels with each device call. Only `gan classify` reads a
    discriminator (SSGAN's); publish_zoo drops the others."""
    from safetensors import safe_open

    from gancli.families import catalog
    from gancli.store import hub
    with_d = []
    for name in hub.zoo_names():
        config = hub.read_config(hub.zoo_dir() / name)
        for weights in (hub.zoo_dir() / name).glob("*.safetensors"):
            with safe_open(weights, "pt") as f:
                if any(k.startswith("discriminator.") for k in f.keys()):
                    with_d.append(name)
                    assert any("classify" in a.operations for a in catalog.get(config["architecture"]).model_class.abilities), name
    assert with_d == ["ssgan-mnist"]


def test_every_zoo_model_holds_its_floor():
    """zoo/floors.json: each published model's measured numbers as floors (ceilings where lower is better); a retrain
    that measures worse cannot be published (bench/publish_zoo.py refuses) and fails here if written by hand."""
    import json
    from pathlib import Path

    from gancli.quality import measures
    zoo = Path(__file__).resolve().parents[1] / "zoo"
    floors = json.loads((zoo / "floors.json").read_text())
    models = {p.parent.name: json.loads(p.read_text()) for p in zoo.glob("*/config.json")}
    published = {n for n, c in models.items() if c.get("task") != "classifier"}
    assert published <= set(floors), published - set(floors)
    for name in published:
        assert floors[name] and set(floors[name]) <= set(measures.MEASURES), name
        assert measures.below_floors(models[name]["evaluation"], floors[name]) == [], name
    worse = dict(models["dcgan-mnist"]["evaluation"], legible_share=0.2, fid=9.0)
    said = measures.below_floors(worse, floors["dcgan-mnist"])
    assert any(s.startswith("fid 9.000 is worse") for s in said) and any("legible_share" in s for s in said)


_LOAD_ZOO = """
import json, sys
import gancli
for name in sys.argv[1:]:
    gancli.load(name, device="cpu")
    print(json.dumps([name, "torch._dynamo" in sys.modules or "sympy" in sys.modules]), flush=True)
"""


def test_loading_a_zoo_model_imports_no_compiler():
    """A model's shapes are built on the meta device before its weights are read: a buffer made there with tensor
    arithmetic or an expand-and-clone runs torch's reference ops, which import dynamo and sympy (srresnet-x4's
    blur kernel did: 1.4 s on every load)."""
    from gancli.store.hub import zoo_dir

    names = sorted(p.name for p in zoo_dir().iterdir() if (p / "config.json").is_file()
                   and not p.name.startswith("classifier-"))
    r = subprocess.run([sys.executable, "-c", _LOAD_ZOO, *names], capture_output=True, text=True, timeout=300)
    results = [tuple(json.loads(line)) for line in r.stdout.splitlines()]
    assert [n for n, _ in results] == names, r.stderr[-2000:]
    assert not [n for n, compiler in results if compiler]
