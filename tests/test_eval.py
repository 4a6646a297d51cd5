"""`gan eval`, its metrics, the shipped judges, and evaluation during training."""
import json
import shutil

import pytest
import torch
from conftest import SHARED, make_image_folder, share_references
from PIL import Image
from typer.testing import CliRunner

import gancli
from gancli.cli import app
from gancli.data import datasets
from gancli.data.reading import list_images, load_image_folder
from gancli.evaluation.evaluate import build_reference, collapse_alarms, embed, evaluate_translation
from gancli.quality import formulas
from gancli.quality.judges import load_judge

runner = CliRunner()
needs_mnist = pytest.mark.skipif(not (SHARED / "mnist").is_dir(), reason="needs ../shared/data/mnist")
needs_h2z = pytest.mark.skipif(not (SHARED / "horse2zebra").is_dir(), reason="needs ../shared/data/horse2zebra")


@pytest.fixture(autouse=True)
def shared_data(monkeypatch):
    monkeypatch.setenv("GAN_DATA", str(SHARED))


# ------------------------------------------------------------------------------------------------ metrics
def test_distances_are_zero_for_one_distribution_and_grow_with_a_shift():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(3000, 16, generator=g)
    same = torch.randn(3000, 16, generator=g)
    shifted = same + 0.5
    assert formulas.frechet_distance(real, same) < 0.1  # finite-sample bias only
    assert formulas.frechet_distance(real, shifted) == pytest.approx(16 * 0.25, rel=0.1)  # |mu|^2 = 16 * 0.5^2
    # 10 subsets of 1000, not `gan eval`'s 100: the gap checked is wide, and each 100 costs ~2.5 s of CPU here
    kid_same, _ = formulas.kernel_distance(real, same, subsets=10)
    kid_shift, _ = formulas.kernel_distance(real, shifted, subsets=10)
    assert abs(kid_same) < 0.01 < kid_shift
    assert formulas.kernel_distance(real, shifted, subsets=10, seed=3) == \
        formulas.kernel_distance(real, shifted, subsets=10, seed=3)


def test_precision_recall_tell_collapse_from_breadth():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(1000, 8, generator=g)
    collapsed = real[:1] + 0.01 * torch.randn(1000, 8, generator=g)  # every sample near one real point
    p, r = formulas.precision_recall(real, collapsed)
    assert p > 0.9 and r < 0.05
    p, r = formulas.precision_recall(real, torch.randn(1000, 8, generator=g))
    assert p > 0.6 and r > 0.6
    assert formulas.diversity(collapsed) < 0.05 * formulas.diversity(real)


def test_collapse_alarm_names_what_was_lost():
    best = {"classes_covered": 10, "recall": 0.8, "diversity": 8.0}
    healthy = {"diversity": 7.5, "real_diversity": 8.0, "classes_covered": 10, "num_classes": 10, "recall": 0.75}
    assert collapse_alarms(healthy, best) == []
    collapsed = {"diversity": 1.0, "real_diversity": 8.0, "classes_covered": 3, "num_classes": 10, "recall": 0.1}
    alarms = collapse_alarms(collapsed, best)
    assert len(alarms) == 3
    assert "diversity fell to 12%" in alarms[0] and "3 of 10 classes" in alarms[1] and "recall fell" in alarms[2]


# ------------------------------------------------------------------------------------------------ judges
@needs_mnist
def test_shipped_mnist_judge_reads_real_digits():
    judge = load_judge("classifier-mnist")
    test = datasets.load_idx_split(SHARED / "mnist", "test")
    assert judge.config["test_accuracy"] >= 0.99
    assert (judge.predict(test.images[:1000]) == test.labels[:1000]).float().mean() >= 0.98
    assert judge.embed(test.images[:5]).shape == (5, judge.num_features)


@needs_mnist
def test_stacked_mnist_modes_are_read_channel_by_channel():
    test = datasets.load_idx_split(SHARED / "mnist", "test")
    stacked = datasets.stack_digits(test, 500, seed=1)
    assert stacked.images.shape == (500, 3, 28, 28) and int(stacked.labels.max()) < 1000
    # the label is the three digits read as a number: red = hundreds
    first = stacked.labels[0].item()
    judge = load_judge("classifier-mnist")
    assert judge.predict(stacked.images[:1, :1]).item() == first // 100
    _, modes = embed(judge, stacked.images, stack=3)
    assert (modes == stacked.labels).float().mean() >= 0.95


# ------------------------------------------------------------------------------------------------ gan eval
@pytest.fixture(scope="module")
def gan_mnist_measured():
    """One library evaluation of the zoo's gan-mnist, shared; its reference (the 10,000 real test digits, embedded)
    is shared with the tests that use the shared_references fixture."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GAN_DATA", str(SHARED))
        share_references(mp)
        return gancli.evaluation.evaluate.evaluate("gan-mnist", "mnist", n=500, device="cpu")


@needs_mnist
def test_gan_eval_measures_a_zoo_model_deterministically(tmp_path, gan_mnist_measured, shared_references):
    """The CLI and the library sample and measure apart and must agree; the reference they share is checked against
    a fresh embedding of real digits (its first 1,000: two batches of the judge's 500, as in the full build)."""
    r = runner.invoke(app, ["eval", "gan-mnist", "--real", "mnist", "-n", "500", "--device", "cpu", "--json",
                            str(tmp_path / "a.json")])
    assert r.exit_code == 0, r.output
    assert "fid" in r.output and "classes_covered" in r.output
    a = json.loads((tmp_path / "a.json").read_text())
    for key in ("fid", "kid", "precision", "recall", "classes_covered", "kl"):
        assert key in a, key
    assert a["classes_covered"] == 10 and a["kl"] < 0.1 and a["precision"] > 0.5 and a["recall"] > 0.5
    assert a["feature_extractor"] == "classifier-mnist" and a["command"].startswith("gan eval gan-mnist")
    same = lambda r: {k: v for k, v in r.items() if k not in ("seconds", "command")}
    assert same(a) == same(gan_mnist_measured)  # the CLI and the library, run apart, measure the same numbers
    shared = gancli.evaluation.evaluate.build_reference("mnist", load_judge("classifier-mnist"), datasets.DATASETS["mnist"],
                                             size=28)
    test = datasets.load_idx_split(SHARED / "mnist", "test")
    fresh, _ = embed(load_judge("classifier-mnist"), test.images[:1000])
    assert shared.images == 10000 and torch.equal(shared.features[:1000], fresh)
    assert torch.equal(shared.labels, test.labels)


@needs_mnist
def test_a_broken_generator_scores_far_worse_than_a_trained_one(tiny_model_dir, gan_mnist_measured, shared_references):
    trained = gan_mnist_measured
    broken = gancli.evaluation.evaluate.evaluate(str(tiny_model_dir), "mnist", n=500, device="cpu")
    assert broken["fid"] > 10 * trained["fid"]
    assert broken["precision"] < 0.2 < trained["precision"]


@needs_mnist
def test_conditional_model_label_accuracy(shared_references):
    r = gancli.evaluation.evaluate.evaluate("cgan-mnist", "mnist", n=500, device="cpu")
    assert r["label_accuracy"] > 0.9
    assert set(r["label_accuracy_per_class"]) == {str(i) for i in range(10)}


@needs_mnist
def test_stacked_mnist_eval_counts_modes(tmp_path):
    from conftest import tiny_config

    from gancli.evaluation.evaluate import evaluate_generator, pick_judge
    from gancli.use.model import GANModel

    torch.manual_seed(0)
    model = GANModel.from_config(tiny_config(channels=3) | {"dataset": "stacked-mnist"})
    judge_name, ds = pick_judge(None, model.config, None)
    assert (judge_name, ds.name) == ("classifier-mnist", "stacked-mnist")
    ref = build_reference("stacked-mnist", load_judge(judge_name), ds, n=1000)  # `gan eval` takes 10,000 or more
    assert ref.num_modes == 1000 and ref.features.shape == (1000, 3 * 128)
    r = evaluate_generator(model, ref, n=300)
    assert r["num_modes"] == 1000 and 0 < r["modes_covered"] <= 300
    assert r["kl"] > 1.0  # an untrained generator is nowhere near uniform over the modes
    with pytest.raises(ValueError, match="3 channels"):
        evaluate_generator(GANModel.from_config(tiny_config()), ref, n=10)


def test_eval_errors_are_one_line(tiny_model_dir, tmp_path):
    r = runner.invoke(app, ["eval", "gan-mnsit"])
    assert r.exit_code == 2 and "Did you mean" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["eval", str(tiny_model_dir), "--real", "fashon"])
    assert r.exit_code == 2 and "Did you mean: fashion" in r.output
    (tmp_path / "a-file").write_text("")
    r = runner.invoke(app, ["eval", "gan-mnist", "--json", str(tmp_path / "a-file" / "r.json")])
    assert r.exit_code == 2 and "a-file is a file, not a folder" in r.output
    r = runner.invoke(app, ["eval", str(tiny_model_dir)])
    assert r.exit_code == 2 and "--real" in r.output
    r = runner.invoke(app, ["sample", "classifier-mnist"])
    assert r.exit_code == 2 and "is a classifier" in r.output


def test_eval_against_a_folder_and_with_inception_weights(tiny_model_dir, tmp_path):
    from gancli.quality.inception import FIDInceptionV3

    folder = make_image_folder(tmp_path / "digits", n_per_class=4, classes=("0", "1"))  # Inception: 0.3 s an image
    weights = tmp_path / "pt_inception.pth"
    torch.manual_seed(0)
    torch.save(FIDInceptionV3().state_dict(), weights)
    r = runner.invoke(app, ["eval", str(tiny_model_dir), "--real", str(folder), "-n", "8", "--device", "cpu",
                            "--inception-weights", str(weights), "--json", str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["real_images"] == 8 and res["fid_inception"] >= 0 and res["feature_extractor"] == "classifier-mnist"
    # the folder's classes are digits the judge knows: its labels are the reference class shares
    assert "notes" not in res and res["num_classes"] == 10
    # a model trained on MNIST, measured against another folder: that folder is the reference, not MNIST
    r = runner.invoke(app, ["eval", "gan-mnist", "--real", str(folder), "-n", "8", "--device", "cpu", "--json",
                            str(tmp_path / "g.json")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "g.json").read_text())["real_images"] == 8


@needs_mnist
def test_eval_novelty_tells_copies_from_new_images(tiny_model_dir, tmp_path, shared_references):
    """A "generator" that returns training digits is a copier: distance 0 to the training set. Real test digits are
    new, at a distance like a good generator's."""
    from gancli.data.datasets import DATASETS, find, load_idx_split
    from gancli.evaluation.evaluate import build_reference, novelty
    from gancli.quality.judges import load_judge

    judge = load_judge("classifier-mnist")
    model = gancli.load(tiny_model_dir, device="cpu")
    ref = build_reference("mnist", judge, DATASETS["mnist"], size=model.image_size)  # as `gan eval` builds it
    train = load_idx_split(find(DATASETS["mnist"]), "train").images
    model.generate = lambda z, labels=None, batch_size=256, truncation=None: iter([train[:len(z)].float() / 127.5 - 1])
    r = novelty(model, ref, DATASETS["mnist"], n=200, grid_path=tmp_path / "nearest.png")
    assert r["nearest_train_distance"] < 0.05 and r["real_nearest_train_distance"] > 3
    assert 0 <= r["class_entropy"] < 0.5 and 0 <= r["real_class_entropy"] < 0.5  # digits are clearly one class
    with Image.open(tmp_path / "nearest.png") as im:
        assert im.size == (8 * 30 + 2, 2 * 30 + 2)  # 8 samples above their nearest training images
    r = runner.invoke(app, ["eval", str(tiny_model_dir), "--real", "mnist", "-n", "100", "--novelty", "--novelty-grid",
                            str(tmp_path / "g.png"), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "nearest_train_distance" in r.output and (tmp_path / "g.png").is_file()


# ------------------------------------------------------------------------------------------------ translation
class _Oracle:
    """Stands in for a translation model: 'identity' returns its input; 'swap' returns real target-domain images."""

    def __init__(self, mode, targets=None):
        self.mode, self.targets, self.used = mode, targets, 0

    def direction(self, spec):
        return spec

    def target_domain(self, direction):
        return "zebra" if direction == "a2b" else "horse"

    def translate(self, x, direction):
        if self.mode == "identity":
            return x
        out = self.targets[self.used:self.used + len(x)].float() / 127.5 - 1
        self.used += len(x)
        return torch.nn.functional.interpolate(out, size=x.shape[-2:], mode="bilinear")


@needs_h2z
def test_translation_scores_separate_doing_nothing_from_changing_everything(tmp_path):
    judge = load_judge("classifier-horse2zebra")
    identity = evaluate_translation(_Oracle("identity"), "horse2zebra", judge, "a2b", size=64)
    assert identity["structure"] == pytest.approx(1.0)
    assert identity["target_domain_rate"] == identity["input_target_domain_rate"] < 0.2
    # the swap uses one training zebra per test horse, in file order: load those, not all 2,401 training images
    horses = len(list_images(SHARED / "horse2zebra" / "testA"))
    (tmp_path / "zebras").mkdir()
    for f in list_images(SHARED / "horse2zebra" / "trainB")[:horses]:
        shutil.copy(f, tmp_path / "zebras" / f.name)
    zebras = load_image_folder(tmp_path / "zebras", 64, 3).images
    swap = evaluate_translation(_Oracle("swap", zebras), "horse2zebra", judge, "a2b", size=64)
    assert swap["target_domain_rate"] > 0.8 and swap["structure"] < 0.3
    assert swap["fid"] < identity["fid"]


def test_gan_eval_a_translation_model(translator, tmp_path):
    for split, colour in (("testA", (140, 90, 40)), ("testB", (240, 240, 240))):
        (tmp_path / "pairs" / split).mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (40, 32), tuple(c - 10 * i for c in colour)).save(tmp_path / "pairs" / split / f"{i}.png")
    r = runner.invoke(app, ["eval", str(translator), "--real", str(tmp_path / "pairs"), "--direction", "zebra",
                            "--device", "cpu", "--json", str(tmp_path / "t.json")])
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "t.json").read_text())
    assert res["direction"] == "a2b" and res["target_domain"] == "zebra" and res["images"] == 6
    assert 0 <= res["target_domain_rate"] <= 1 and -1 <= res["structure"] < 1
    assert res["feature_extractor"] == "classifier-horse2zebra"
    r = runner.invoke(app, ["eval", str(translator), "--real", str(tmp_path / "nowhere")])
    assert r.exit_code == 2 and "unknown data set (or folder)" in r.output
    r = runner.invoke(app, ["eval", str(translator), "--real", str(tmp_path / "pairs" / "testA")])
    assert r.exit_code == 2 and "needs testA/ and testB/" in r.output


# ------------------------------------------------------------------------------------------------ training
@needs_mnist
def test_train_eval_every_writes_measures_and_flags_a_collapsed_generator(tmp_path):
    from test_train import options

    from gancli.training.trainer import Trainer

    folder = make_image_folder(tmp_path / "imgs", n_per_class=8)
    trainer = Trainer(options(folder, tmp_path / "run", eval_every=3, eval_samples=100))
    trainer.run()
    rows = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if r.get("event") == "eval"]
    assert [r["step"] for r in evals] == [3, 6]
    assert all(r["fid"] >= 0 and 0 <= r["recall"] <= 1 and r["feature_extractor"] == "classifier-mnist"
               for r in evals)
    assert "eval at step 6" in (tmp_path / "run" / "log.txt").read_text()
    assert Image.open(tmp_path / "run" / "quality.png").size == (1000, 880)  # FID, KID, the [0, 1] measures
    # a generator that draws one image: the monitor raises the alarm
    monitor = trainer.monitor
    monitor.best["diversity"] = formulas.diversity(monitor.ref.features)  # as if it had once been as diverse as the data
    constant = lambda z, y: torch.zeros(len(z), 1, 28, 28).add_(-1).index_fill_(2, torch.tensor([10, 11]), 1.0)
    result = monitor.measure(constant, 8)
    assert any("diversity" in a for a in result["alarms"])


def test_coverage_is_not_raised_by_outlying_samples_as_recall_is():
    """Half the samples collapsed onto one real point, half scattered far and wide: recall calls that broad, since
    the stray samples' huge k-NN balls swallow the data; coverage, read from the real balls alone, sees the collapse.
    Samples drawn like the data score near coverage's expected 1 - 2^-k (0.875) and density 1."""
    g = torch.Generator().manual_seed(0)
    real = torch.randn(1000, 8, generator=g)
    stray = 6 * torch.randn(500, 8, generator=g)
    collapsed = torch.cat([real[:1] + 0.01 * torch.randn(500, 8, generator=g), stray])
    _, recall = formulas.precision_recall(real, collapsed)
    density, coverage = formulas.density_coverage(real, collapsed)
    assert recall > 0.9 and coverage < 0.05
    density, coverage = formulas.density_coverage(real, torch.randn(1000, 8, generator=g))
    assert 0.8 < coverage < 0.95 and 0.8 < density < 1.2


@needs_mnist
def test_class_diversity_reads_a_label_that_draws_one_picture(monkeypatch):
    """Within a class, a conditional model's samples spread about as the data's do (cgan-mnist: about 0.9 of it);
    one z for every sample of a label (each label then draws one picture) reads near 0."""
    from gancli.evaluation.evaluate import evaluate
    from gancli.families.model import GANModel

    varied = evaluate("cgan-mnist", n=400, device="cpu")
    assert varied["class_diversity"] > 0.6 and set(varied["class_diversity_per_class"]) == set("0123456789")
    monkeypatch.setattr(GANModel, "latents_for", lambda self, n=None, seed=0, seeds=None:
                        torch.zeros(n if seeds is None else len(seeds), self.latent_dim))
    assert evaluate("cgan-mnist", n=400, device="cpu")["class_diversity"] < 0.05
