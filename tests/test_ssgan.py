"""The semi-supervised GAN: the labelled subset, the classifier, `gan classify`."""
import json

import pytest
import torch
from tiny_families import CARD, SSGAN_TRAIN, _digit_file, needs_mnist, run

import gancli
from gancli.use.model import GANModel


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
    with torch.no_grad():  # classify runs a copy with the weights computed once: it follows a change to them
        before = model.classify(x)
        model.discriminator.head.parametrizations.weight.original0.mul_(3)
        assert torch.allclose(model.classify(x), torch.softmax(model.discriminator(x), 1))
        assert not torch.allclose(model.classify(x), before)
    assert again.discriminator.head.weight.shape == (10, 250)  # the copy left the model's own layers as they were


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
    from gancli.evaluation.evaluate import evaluate

    torch.manual_seed(0)
    cfg = {"architecture": "ssgan", "arch_args": {"ssgan_classes": 10, "latent_dim": 8, "image_size": 28,
                                                  "channels": 1, "g_width": 4, "d_width": 4},
           "latent_dim": 8, "image_size": 28, "channels": 1, "name": "s", "dataset": "mnist",
           "classifier_classes": [str(i) for i in range(10)]}
    folder = GANModel.from_config(cfg).save_pretrained(tmp_path / "s", card=CARD)
    r = evaluate(str(folder), "mnist", n=200, device="cpu")
    assert r["test_images"] == 10000 and 0 <= r["test_accuracy"] <= 1
    assert r["test_error"] == pytest.approx(1 - r["test_accuracy"], abs=1e-4)
