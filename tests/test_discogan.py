"""DiscoGAN: class-selection domains, its training, and what `gan eval` measures of it."""
import json

from conftest import SHARED
from PIL import Image
from tiny_families import DISCO_TRAIN, needs_fashion, run

import gancli


# ------------------------------------------------------------------------------------------------ DiscoGAN
def test_discogan_learns_between_class_selections_and_translates_any_size(image_folder, tmp_path):
    r = run("train", image_folder, "--out", tmp_path / "g", "--steps", 4, "--device", "cpu", "--log-every", 2,
            *DISCO_TRAIN)
    assert r.exit_code == 0, r.output
    row = json.loads((tmp_path / "g" / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"loss_rec", "loss_d", "loss_g"} <= set(row)
    m = gancli.load(tmp_path / "g", device="cpu")
    assert m.is_translation and m.domains == ["ring", "grey"] and m.discriminator is None
    src = image_folder / "a" / "000.png"  # 28 px: padded to the generator's multiple of 4, cropped back
    r = run("translate", tmp_path / "g", src, "-o", tmp_path / "out.png", "--direction", "grey")
    assert r.exit_code == 0, r.output
    with Image.open(tmp_path / "out.png") as im:
        assert im.size == (28, 28)
    r = run("translate", tmp_path / "g", src, "-o", tmp_path / "back.png", "--direction", "ring")
    assert r.exit_code == 0, r.output
    r = run("train", image_folder, "--out", tmp_path / "x", "--steps", 1, "--device", "cpu", *DISCO_TRAIN[:2],
            "--domains", "ring:0,grey:7", "--size", "16")
    assert r.exit_code == 2 and "classes run from 0 to 1" in r.output


@needs_fashion
def test_discogan_eval_between_fashion_classes(tmp_path):
    """The bags <-> shoes measures on Fashion-MNIST's test classes, checked with an identity "translator"."""
    from gancli.evaluation.evaluate import evaluate, evaluate_class_translation
    from gancli.quality.judges import load_judge

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
