"""Small and strange inputs, each drawn at its size or refused in one line: a seed past 2**63 - 1 for every command
that takes one, a 4x4 or a 1x7 photo to translate, a negative count, a caption of 2000 words, -n for a model
measured on photos, a turned JPEG for a translator that works at its training scale."""

import numpy as np
import pytest
from PIL import Image
from tiny_families import gan, one_error  # noqa: E402


def test_every_command_takes_one_range_of_seeds(tmp_path):
    from typer.testing import CliRunner

    from gancli.cli import app

    def refused(*args, message="must be between 0 and 9223372036854775807 (2**63 - 1)"):
        r = CliRunner().invoke(app, [str(a) for a in args])
        assert r.exit_code == 2 and r.output.startswith("error: ") and message in r.output, r.output

    big = "99999999999999999999"
    for args in (("toy", "1d"), ("toy", "2d"), ("sample", "dcgan-mnist", "-n", 1), ("eval", "dcgan-mnist")):
        refused(*args, "--seed", big, message=f"--seed {big} must be between 0 and 9223372036854775807")
    refused("sample", "dcgan-mnist", "--seeds", f"1,{big}")
    refused("train", tmp_path, "--seed", "-1", "--out", tmp_path / "r")


def test_a_tiny_photo_is_translated_at_its_size(translator, tmp_path):
    Image.new("RGB", (4, 4), (200, 50, 50)).save(tmp_path / "tiny.png")
    Image.new("RGB", (1, 7), (20, 50, 50)).save(tmp_path / "thin.png")
    p = gan("translate", translator, "tiny.png", "thin.png", "--outdir", "out", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert Image.open(tmp_path / "out" / "tiny.png").size == (4, 4)
    assert Image.open(tmp_path / "out" / "thin.png").size == (1, 7)


def test_a_negative_count_is_refused(tiny_model_dir):
    import gancli

    model = gancli.load(tiny_model_dir, device="cpu")
    assert model.sample(0).shape[0] == 0
    with pytest.raises(ValueError, match="must be 0 or more, not -1"):
        model.sample(-1)


def test_a_long_caption_is_not_echoed_whole(tmp_path):
    p = gan("sample", "stackgan-fashion", "--text", "shoe " * 2000, cwd=tmp_path)
    one_error(p, "--text 'shoe shoe")
    assert len(p.stderr) < 300


def test_eval_refuses_n_for_a_model_measured_on_photos(tmp_path):
    one_error(gan("eval", "srgan-x4", "-n", 8, cwd=tmp_path), "srgan-x4 upscales images and is measured on every")


def test_a_photo_for_a_fixed_scale_translator_is_decoded_small_and_given_back_upright(tmp_path):
    """DiscoGAN translates at its 32 px training scale: a JPEG is decoded straight to a fraction of its size and
    grey (libjpeg's DCT scaling), its EXIF quarter turn still applied, and the output has the upright photo's
    full size."""
    from gancli.data.reading import open_image, open_scaled

    rows = np.linspace(0, 255, 192)[:, None].repeat(256, 1)  # stored 256 wide, 192 high: dark at the top
    im = Image.fromarray(np.stack([rows] * 3, -1).astype(np.uint8))
    exif = im.getexif()
    exif[0x0112] = 6  # shown turned a quarter clockwise: 192 wide, 256 high, dark on the right
    im.save(tmp_path / "turned.jpg", exif=exif, quality=95)

    small, own = open_scaled(tmp_path / "turned.jpg", 32, "L")
    assert own == (192, 256) and small.mode == "L" and small.size == (48, 64)  # a quarter of each side
    whole = np.asarray(open_image(tmp_path / "turned.jpg").convert("L").resize(small.size, Image.Resampling.BOX))
    assert np.abs(np.asarray(small).astype(int) - whole).mean() < 2
    assert np.asarray(small)[:, -4:].mean() < 40 < 215 < np.asarray(small)[:, :4].mean()

    p = gan("translate", "discogan-bags2shoes", "turned.jpg", "--outdir", "out", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert Image.open(tmp_path / "out" / "turned.jpg").size == (192, 256)
