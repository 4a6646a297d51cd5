"""One rule for every command's output file (gancli.data.imageio.output_format): the extension names the format; a name
without one is refused in the same words everywhere; a device (/dev/null) needs none."""
from pathlib import Path

import pytest
from tiny_families import run

ROOT = Path(__file__).resolve().parents[1]
BAG = ROOT / "gancli" / "demo" / "examples" / "bag.png"
DIGIT = ROOT / "gancli" / "demo" / "examples" / "digit-3.png"
COMMANDS = {
    "sample": (["sample", "dcgan-mnist", "-n", "4"], ".png, .jpg or .webp"),
    "mix": (["mix", "stylegan-fashion", "--rows", "1", "--cols", "2"], ".png, .jpg or .webp"),
    "interpolate": (["interpolate", "dcgan-mnist", "--steps", "2"], ".gif, .webp or .png"),
    "translate": (["translate", "discogan-bags2shoes", BAG], ".png, .jpg or .webp"),
    "upscale": (["upscale", "srresnet-x4", DIGIT], ".png, .jpg or .webp"),
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_name_without_an_extension_is_refused_alike_and_a_device_is_written(command, tmp_path):
    args, ends = COMMANDS[command]
    r = run(*args, "-o", tmp_path / "out")
    assert r.exit_code == 2 and r.output.startswith(f"error: -o {tmp_path / 'out'} has no extension: end it in {ends}"), \
        r.output
    assert not (tmp_path / "out").exists()
    r = run(*args, "-o", tmp_path / "out.tiff")
    assert r.exit_code == 2 and ".tiff is not a format this command writes" in r.output, r.output
    r = run(*args, "-o", "/dev/null")
    assert r.exit_code == 0 and "/dev/null" in r.output, r.output
    assert Path("/dev/null").is_char_device()  # written into, never replaced


def test_sample_takes_the_format_from_format_when_the_name_has_none(tmp_path):
    r = run("sample", "dcgan-mnist", "-n", 4, "-o", tmp_path / "grid", "--format", "jpg")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "grid").read_bytes()[:3] == b"\xff\xd8\xff"  # a JPEG
    r = run("sample", "dcgan-mnist", "-n", 4, "-o", tmp_path / "grid.png", "--format", "jpg")
    assert r.exit_code == 2 and "--format jpg does not match the extension of grid.png" in r.output


def test_export_wants_a_file_it_can_read_back(tmp_path):
    r = run("export", "dcgan-mnist", "-o", "/dev/null", "--format", "torchscript")
    assert r.exit_code == 2 and r.output.startswith("error: -o /dev/null: gan export loads the file it writes back"), \
        r.output
