"""DiscoGAN: class-selection domains and its training."""
import json

from PIL import Image

import gancli

from tiny_families import run, DISCO_TRAIN


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


