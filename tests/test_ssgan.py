"""The semi-supervised GAN: the labelled subset, the classifier, `gan classify`."""
import json

import pytest
import torch
from PIL import Image

import gancli
from gancli.pretrained import GANModel

from conftest import SHARED

from tiny_families import CARD, run, needs_mnist, needs_fashion, SSGAN_TRAIN, _digit_file


# ------------------------------------------------------------------------------------------------ SSGAN
def test_labelled_subset_is_a_fixed_seeded_choice():
    from gancli.families.ssgan import labelled_subset

    labels = torch.arange(100) % 10
    a, b, c = labelled_subset(labels, 3, 0), labelled_subset(labels, 3, 0), labelled_subset(labels, 3, 1)
    assert torch.equal(a, b) and not torch.equal(a, c) and len(a) == 30
    assert torch.bincount(labels[a]).tolist() == [3] * 10
    with pytest.raises(ValueError, match="fewer images"):
        labelled_subset(labels, 11, 0)


def test_salimans_discriminator_is_noisy_only_while_training(tmp_path):
    from gancli.families.ssgan import NoisyMLPClassifier

    torch.manual_seed(0)
    d, x = NoisyMLPClassifier(28, 1, 10), torch.rand(5, 1, 28, 28) * 2 - 1
    logits, features = d(x, features=True)
    assert logits.shape == (5, 10) and features.shape == (5, 250)
    assert not torch.equal(d(x), d(x))  # Gaussian noise on the pixels and every hidden layer
    d.eval()
    assert torch.equal(d(x), d(x))
    cfg = {"architecture": "ssgan", "arch_args": {"ssgan_classes": 10, "latent_dim": 8, "ssgan_net": "mlp"},
           "latent_dim": 8, "image_size": 28, "channels": 1, "name": "s", "classifier_classes": list("0123456789")}
    model = GANModel.from_config(cfg)
    folder = model.save_pretrained(tmp_path / "s", card=CARD)  # weight-normalised layers survive the round trip
    again = gancli.load(folder, device="cpu")
    assert torch.equal(again.classify(x), model.classify(x))


@needs_mnist
def test_ssgan_classifies_files_and_folders(image_folder, tmp_path):
    r = run("train", image_folder, "--out", tmp_path / "s", "--steps", 3, "--device", "cpu", "--log-every", 1,
            *SSGAN_TRAIN)
    assert r.exit_code == 0, r.output
    config = json.loads((tmp_path / "s" / "export" / "config.json").read_text())
    assert config["classifier_classes"] == ["a", "b"] and len(config["training"]["labelled_indices"]) == 6
    row = json.loads((tmp_path / "s" / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"loss_sup", "loss_unsup", "acc_labelled", "loss_g"} <= set(row)
    digits = tmp_path / "digits"
    digits.mkdir()
    for i in range(3):
        _digit_file(digits / f"{i}.png", i)
    (digits / "broken.png").write_text("not an image")
    r = run("classify", tmp_path / "s", digits, image_folder / "a" / "000.png", "--csv", tmp_path / "new" / "c.csv",
            "--json", tmp_path / "c.json")
    assert r.exit_code == 0, r.output
    assert "skipped" in r.output and "broken.png" in r.output
    lines = (tmp_path / "new" / "c.csv").read_text().splitlines()  # its folder made, as for every output
    assert lines[0] == "file,class,probability" and len(lines) == 5
    rows = json.loads((tmp_path / "c.json").read_text())
    assert all(r["class"] in ("a", "b") and abs(sum(r["probabilities"].values()) - 1) < 1e-3 for r in rows)
    r = run("classify", "dcgan-mnist", digits)
    assert r.exit_code == 2 and "classifying images is for ssgan models" in r.output
    r = run("classify", tmp_path / "s", tmp_path / "nothing-here")
    assert r.exit_code == 2 and "does not exist" in r.output


def test_ssgan_baseline_trains_the_classifier_alone(image_folder, tmp_path):
    r = run("train", image_folder, "--out", tmp_path / "b", "--steps", 3, "--device", "cpu", "--log-every", 1,
            "--no-adversarial", *SSGAN_TRAIN)
    assert r.exit_code == 0, r.output
    row = json.loads((tmp_path / "b" / "metrics.jsonl").read_text().splitlines()[-1])
    assert "loss_unsup" not in row and "loss_sup" in row


@needs_mnist
def test_eval_reports_ssgan_test_accuracy(tmp_path, shared_references):
    from gancli.evaluate import evaluate

    torch.manual_seed(0)
    cfg = {"architecture": "ssgan", "arch_args": {"ssgan_classes": 10, "latent_dim": 8, "image_size": 28,
                                                  "channels": 1, "g_width": 4, "d_width": 4},
           "latent_dim": 8, "image_size": 28, "channels": 1, "name": "s", "dataset": "mnist",
           "classifier_classes": [str(i) for i in range(10)]}
    folder = GANModel.from_config(cfg).save_pretrained(tmp_path / "s", card=CARD)
    r = evaluate(str(folder), "mnist", n=200, device="cpu")
    assert r["test_images"] == 10000 and 0 <= r["test_accuracy"] <= 1
    assert r["test_error"] == pytest.approx(1 - r["test_accuracy"], abs=1e-4)


@needs_fashion
def test_discogan_eval_between_fashion_classes(tmp_path):
    """The bags <-> shoes measures on Fashion-MNIST's test classes, checked with an identity "translator"."""
    from gancli.classifiers import load_judge
    from gancli.evaluate import evaluate, evaluate_class_translation

    r = run("train", SHARED / "fashion-mnist", "--arch", "discogan", "--domains", "bag:8,shoe:7+9", "--size", 16,
            "--g-width", 4, "--d-width", 4, "--batch-size", 4, "--steps", 2, "--device", "cpu",
            "--out", tmp_path / "d")
    assert r.exit_code == 0, r.output
    config = json.loads((tmp_path / "d" / "export" / "config.json").read_text())
    assert config["domain_classes"] == {"bag": [8], "shoe": [7, 9]} and config["dataset"] == "fashion-mnist"
    result = evaluate(str(tmp_path / "d"), device="cpu", direction="shoe")
    assert result["images"] == 1000 and result["real_images"] == 2000  # test bags in, test shoes to compare
    assert 0 <= result["target_domain_rate"] <= 1 and result["reconstruction_error"] > 0
    model = gancli.load(tmp_path / "d", device="cpu")
    model.config["image_size"] = 28  # an identity at full size: nothing is translated, the round trip is exact
    model.translate = lambda x, direction: x
    same = evaluate_class_translation(model, "fashion", load_judge("classifier-fashion"), "a2b")
    assert same["reconstruction_error"] == 0 and same["target_domain_rate"] == same["input_target_domain_rate"] < 0.05


@needs_mnist
def test_eval_novelty_tells_copies_from_new_images(tiny_model_dir, tmp_path, shared_references):
    """A "generator" that returns training digits is a copier: distance 0 to the training set. Real test digits are
    new, at a distance like a good generator's."""
    from gancli.classifiers import load_judge
    from gancli.datasets import DATASETS, find, load_idx_split
    from gancli.evaluate import build_reference, novelty

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
    r = run("eval", tiny_model_dir, "--real", "mnist", "-n", 100, "--novelty", "--novelty-grid",
            tmp_path / "g.png", "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert "nearest_train_distance" in r.output and (tmp_path / "g.png").is_file()
