"""StackGAN: a tiny text-to-image model trained through the CLI on two captioned classes, then sampled from its
captions (both stages), its vocabulary's errors, the KL term, config.json's vocabulary as untrusted input, and the
zoo model's trousers."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_image_folder
from PIL import Image
from typer.testing import CliRunner

from gancli.cli import app
from gancli.families import losses, stackgan
from gancli.use.model import GANModel

runner = CliRunner()
ZOO = Path(__file__).resolve().parents[1] / "zoo" / "stackgan-fashion"


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def tiny_stack(tmp_path_factory) -> Path:
    """A StackGAN trained 4 steps (2 per stage) on 32 px rings labelled Trouser and Ankle boot: its export folder."""
    root = tmp_path_factory.mktemp("stack")
    data = make_image_folder(root / "clothes", n_per_class=8, size=32, classes=("Trouser", "Ankle boot"))
    r = run("train", data, "--arch", "stackgan", "--out", root / "run", "--steps", 4, "--stage1-steps", 2,
            "--batch-size", 8, "--stack-width", 4, "--noise-dim", 4, "--ca-dim", 2, "--device", "cpu")
    assert r.exit_code == 0, r.output
    return root / "run" / "export"


def test_trained_model_samples_its_captions_at_both_stages(tiny_stack, tmp_path):
    config = json.loads((tiny_stack / "config.json").read_text())
    assert "trousers" in config["vocabulary"] and "sneaker" not in config["vocabulary"]  # only its classes' words
    r = run("sample", tiny_stack, "--text", "a pair of trousers", "-n", 6, "--nrow", 3, "-o", tmp_path / "g.png",
            "--scale", 1)
    assert r.exit_code == 0, r.output
    with Image.open(tmp_path / "g.png") as im:
        assert im.size == (3 * 34 + 2, 2 * 34 + 2)
    for stage in (1, 2):
        r = run("sample", tiny_stack, "--text", "an ankle boot", "-n", 2, "--stage", stage, "--outdir",
                tmp_path / f"s{stage}")
        assert r.exit_code == 0, r.output
    coarse = np.asarray(Image.open(tmp_path / "s1" / "seed0-000000.png"), dtype=int)
    final = np.asarray(Image.open(tmp_path / "s2" / "seed0-000000.png"), dtype=int)
    assert coarse.shape == final.shape == (32, 32)
    # stage I draws 16x16, shown upscaled: every 2x2 block is one pixel; stage II's are not
    assert (coarse[::2, ::2] == coarse[1::2, 1::2]).all() and not (final[::2, ::2] == final[1::2, 1::2]).all()


def test_its_card_suggests_captions_it_knows(tiny_stack, tmp_path):
    """A model trained on two classes has only their words: the card's (and the end of training's) commands use
    its own classes' captions, and they run."""
    import re
    import shlex

    card = (tiny_stack / "README.md").read_text()
    captions = re.findall(r"--text ('[^']*'|\S+)", card)
    assert captions and "ankle boot" in card and "t-shirt" not in card, card
    for i, caption in enumerate(captions):
        r = run("sample", tiny_stack, "--text", shlex.split(caption)[0], "-n", 1, "-o", tmp_path / f"{i}.png")
        assert r.exit_code == 0, r.output
    # trousers and bags only: no boot, no "an" in its words
    fam, names = stackgan.StackGAN(), ["Trouser", "Bag"]
    for line in fam.card_use({"class_names": names}, "m"):
        for caption in re.findall(r"--text ('[^']*'|\S+)", line):
            stackgan.tokens(stackgan.vocabulary_of(names), [shlex.split(caption)[0]])  # LookupError if unknown


def test_sampling_is_a_function_of_seed_and_caption(tiny_stack):
    model = GANModel.from_pretrained(tiny_stack, device="cpu")
    a = model.sample(4, seed=3, text="trousers")
    assert torch.equal(a, model.sample(4, seed=3, text="trousers"))
    assert not torch.equal(a, model.sample(4, seed=3, text="an ankle boot"))
    mixed = model.sample(4, seed=3, text=["trousers", "an ankle boot"])  # a list: cycled through the images
    assert torch.equal(mixed[0], a[0]) and not torch.equal(mixed[1], a[1])


@pytest.mark.parametrize("args, message", [
    (["--text", "a leather boots"], "unknown word 'boots' in --text 'a leather boots' (did you mean 'boot'?); "
                                    "the vocabulary is: a, an, ankle, boot, leather, long, of, pair, pants, short, "
                                    "trousers, winter"),
    (["--text", "a sneaker"], "unknown word 'sneaker'"),  # a Fashion-MNIST word, but not of this model's classes
    (["--text", "  "], "--text is empty"),
    ([], "draws images from a caption: give --text, e.g. --text 'a pair of trousers'"),
    (["--text", "trousers", "--label", "1"], "give --text, not --label"),
    (["--text", "trousers", "--stage", "3"], "--stage 3"),
])
def test_caption_errors_are_one_line(tiny_stack, tmp_path, args, message):
    r = run("sample", tiny_stack, *args, "-n", 2, "-o", tmp_path / "x.png")
    assert r.exit_code == 2 and message in r.output and r.output.count("error:") == 1, r.output
    assert not (tmp_path / "x.png").exists()


def test_text_on_a_model_without_text(tiny_model_dir, tmp_path):
    for extra in (["--text", "a boot"], ["--stage", "1"]):
        r = run("sample", tiny_model_dir, *extra, "-o", tmp_path / "x.png")
        assert r.exit_code == 2 and "is for stackgan models" in r.output, r.output


@pytest.mark.parametrize("args, message", [
    (["--ema"], "--ema is not supported by stackgan"),
    (["--eval-every", 2], "--eval-every measures generators of images from noise; for stackgan use `gan eval`"),
    (["--size", 28], "stackgan draws 32x32 images"),
    (["--stage1-steps", 2], "--steps 2 would leave stage II untrained"),
])
def test_training_options_it_refuses(tmp_path, args, message):
    data = make_image_folder(tmp_path / "d", n_per_class=4, size=32, classes=("Trouser", "Bag"))
    r = run("train", data, "--arch", "stackgan", "--out", tmp_path / "r", "--steps", 2, "--stage1-steps", 1,
            "--batch-size", 4, "--stack-width", 4, *args)
    assert r.exit_code == 2 and message in r.output, r.output
    assert not (tmp_path / "r").exists()


def test_data_without_its_classes(image_folder, tmp_path):
    r = run("train", image_folder, "--arch", "stackgan", "--out", tmp_path / "r", "--steps", 2, "--stage1-steps", 1)
    assert r.exit_code == 2 and "stackgan's captions are written for Fashion-MNIST's classes" in r.output
    assert "not a, b" in r.output, r.output


def test_kl_term():
    zero = torch.zeros(5, 3)
    assert stackgan.kl_term(zero, zero).item() == 0.0  # N(0, I) against itself
    # KL(N(1, 1) || N(0, 1)) = 1/2 per dimension; a variance of e: (e - 1 - 1) / 2 per dimension
    assert stackgan.kl_term(torch.ones(5, 3), zero).item() == pytest.approx(1.5)
    assert stackgan.kl_term(zero, torch.ones(5, 3)).item() == pytest.approx(1.5 * (np.e - 2))


@pytest.mark.parametrize("vocabulary, message", [
    ("a b", "vocabulary must be a list"),
    (["a", 3], "vocabulary holds '3'"),
    (["a", "../x"], "vocabulary holds '../x'"),
    (["a", "a"], "lists a word twice"),
    (["a"], "vocabulary has 1 words but arch_args.vocab_size is"),
    (["w"] * 5000, "a list of 1 to 1000 words"),
])
def test_config_vocabulary_is_checked_before_loading(tiny_stack, tmp_path, vocabulary, message):
    _sample_with_config(tiny_stack, tmp_path, {"vocabulary": vocabulary}, message)


@pytest.mark.parametrize("names, message", [
    (["Trouser", "Pyjamas"], "class_names must list classes stackgan has captions for"),
    ("Trouser", "class_names must be a list of names"),
    (["Trouser"], "class_names lists 1 classes but arch_args.text_classes is 2"),
])
def test_config_class_names_are_checked_before_loading(tiny_stack, tmp_path, names, message):
    _sample_with_config(tiny_stack, tmp_path, {"class_names": names}, message)


def _sample_with_config(export: Path, tmp_path: Path, change: dict, message: str):
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(export, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | change))
    r = run("sample", folder, "--text", "trousers", "-o", tmp_path / "x.png")
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output, r.output


@pytest.mark.skipif(not ZOO.is_dir(), reason="stackgan-fashion is not published")
def test_zoo_model_draws_trousers_when_asked(monkeypatch):
    """The one real check: `gan eval`'s caption measure on the zoo model, at a few samples per class."""
    from gancli.quality.judges import load_judge

    monkeypatch.setattr(stackgan, "TEXT_SAMPLES", 40)
    model = GANModel.from_pretrained("stackgan-fashion", device="cpu")
    result = model.family.evaluate_extra(model, None, load_judge("classifier-fashion", device="cpu"))
    assert result["text_prompts"]["Trouser"] == ["a pair of trousers"]
    # mostly trousers (chance: 10%; the full `gan eval`: 100% and 100%)
    assert result["text_accuracy_per_class"]["Trouser"] >= 0.7
    assert result["text_accuracy_unseen_per_class"]["Trouser"] >= 0.6  # "long pants", "a pair of long trousers"
    assert result["text_accuracy"] > 0.4  # and the other captions, on average, far above chance


TINY_STACK = ["--arch", "stackgan", "--stage1-steps", 2, "--batch-size", 8, "--stack-width", 4, "--noise-dim", 4,
              "--ca-dim", 2, "--device", "cpu", "--log-every", 1]


def stopped_and_resumed(tmp_path, *options) -> list[dict]:
    """A tiny two-class run with ``options``: 3 steps, stopped, resumed to 4 (two of each stage); its step rows."""
    data = make_image_folder(tmp_path / "clothes", n_per_class=8, size=32, classes=("Trouser", "Ankle boot"))
    r = run("train", data, "--out", tmp_path / "r", "--steps", 3, *options, *TINY_STACK)
    assert r.exit_code == 0, r.output
    r = run("train", data, "--out", tmp_path / "r", "--steps", 4, "--resume")
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    return [row for row in rows if "loss_d" in row]


def test_class_head_trains_in_both_stages_and_resumes(tmp_path):
    """--class-weight builds a class head on each discriminator, logs how often it names the fakes' caption class in
    both stages, and a stopped run resumes with it; without the option the discriminators have no head, as runs made
    before it existed."""
    rows = stopped_and_resumed(tmp_path, "--class-weight", 1)
    assert [row["stage"] for row in rows] == [1, 1, 2, 2]
    assert all(0 <= row["class_acc_fake"] <= 1 for row in rows)
    assert json.loads((tmp_path / "r" / "export" / "config.json").read_text())["arch_args"]["d_classes"] == 2

    fam = stackgan.StackGAN()
    args = {"vocab_size": 9, "text_classes": 2, "noise_dim": 4, "ca_dim": 2, "g_width": 4, "d_width": 4}
    assert fam.build(**args, d_classes=2)["discriminator"].d2.classify.out_channels == 2
    assert fam.build(**fam.built_with(args))["discriminator"].d1.classify is None  # an older run's arch_args


def test_stage2_kl_weight_changes_stage_two_only(tmp_path):
    """--stage2-kl-weight weighs stage II's KL term alone: two runs that differ only in it log the same stage I
    steps, and at the first stage II step G's losses differ by exactly the weights' difference times the KL."""
    data = make_image_folder(tmp_path / "clothes", n_per_class=8, size=32, classes=("Trouser", "Ankle boot"))
    common = ["--arch", "stackgan", "--steps", 3, "--stage1-steps", 2, "--batch-size", 8, "--stack-width", 4,
              "--noise-dim", 4, "--ca-dim", 2, "--device", "cpu", "--log-every", 1, "--ca-kl-weight", 2]
    logs = {}
    for name, extra in (("same", []), ("zero", ["--stage2-kl-weight", 0])):
        r = run("train", data, "--out", tmp_path / name, *common, *extra)
        assert r.exit_code == 0, r.output
        rows = [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        logs[name] = [row for row in rows if "loss_d" in row]
    same, zero = logs["same"], logs["zero"]
    assert [row["stage"] for row in same] == [1, 1, 2]
    assert [row["loss_g"] for row in same[:2]] == [row["loss_g"] for row in zero[:2]]
    assert same[2]["kl"] == pytest.approx(zero[2]["kl"]) and same[2]["kl"] > 0.005  # well above the rounding
    assert same[2]["loss_g"] - zero[2]["loss_g"] == pytest.approx(2 * same[2]["kl"], abs=1e-3)  # as logged, rounded


def test_mode_seeking_term():
    """MSGAN's term falls as two images of one condition move apart for the same two noises."""
    za, zb = torch.zeros(4, 3), torch.ones(4, 3)
    near, far = torch.zeros(4, 1, 8, 8), torch.full((4, 1, 8, 8), 0.5)
    assert losses.mode_seeking(near, far, za, zb).item() == pytest.approx(2.0, rel=1e-3)
    assert losses.mode_seeking(near, 2 * far, za, zb) < losses.mode_seeking(near, far, za, zb)
    assert losses.mode_seeking(near, near, za, zb).item() == pytest.approx(1e5)  # bounded when they coincide


def test_mode_seeking_trains_in_both_stages_and_resumes(tmp_path):
    """--mode-seeking logs its term at every step of both stages, a stopped run resumes with it, the card's
    training record names it, and a run without it logs no such term (runs made before it existed)."""
    rows = stopped_and_resumed(tmp_path, "--mode-seeking", 1)
    assert [row["stage"] for row in rows] == [1, 1, 2, 2] and all(row["mode_seeking"] > 0 for row in rows)
    config = json.loads((tmp_path / "r" / "export" / "config.json").read_text())
    assert "mode-seeking x1" in config["training"]["loss"]
    r = run("train", tmp_path / "clothes", "--out", tmp_path / "plain", "--steps", 3, *TINY_STACK)
    assert r.exit_code == 0 and "mode_seeking" not in (tmp_path / "plain" / "metrics.jsonl").read_text()
