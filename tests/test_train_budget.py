"""`gan train ./photos` on a laptop: a size the family does well at when none is given, the estimate line after the
first steps, and --time, which ends the run within its budget with a checkpoint and an export (and resumes with a
new one)."""
import json
import time

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from gancli.cli import app

TINY = ["--g-width", "4", "--d-width", "4", "--latent-dim", "8", "--batch-size", "4", "--device", "cpu",
        "--sample-every", "1000", "--log-every", "5"]


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def photos(folder, n=12, side=96):
    folder.mkdir(parents=True)
    for i in range(n):
        yy, xx = np.mgrid[:side, :side]
        img = np.stack([128 + 100 * np.sin(xx / (5 + c) + i) * np.cos(yy / 7) for c in range(3)], -1)
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(folder / f"{i}.jpg")
    return folder


def test_photos_larger_than_the_familys_size_train_at_it_and_the_first_lines_say_so(tmp_path):
    r = run("train", photos(tmp_path / "photos"), "--out", tmp_path / "run", "--steps", 120, *TINY)
    assert r.exit_code == 0, r.output
    assert "--size 64 chosen: the images are 96 px" in r.output and "about 2x the time per image" in r.output
    assert "s a step here" in r.output and "peak memory so far" in r.output
    assert json.loads((tmp_path / "run" / "options.json").read_text())["size"] == 64  # a resume finds it
    assert json.loads((tmp_path / "run" / "export" / "config.json").read_text())["image_size"] == 64
    r = run("train", photos(tmp_path / "small", side=32), "--out", tmp_path / "small-run", "--steps", 2, *TINY)
    assert r.exit_code == 0 and "chosen" not in r.output  # never above the data's own size
    assert json.loads((tmp_path / "small-run" / "export" / "config.json").read_text())["image_size"] == 32


def test_time_budget_ends_on_time_with_an_export_and_resumes_with_a_new_budget(tmp_path):
    data, out = photos(tmp_path / "photos", side=32), tmp_path / "run"
    t0 = time.time()
    r = run("train", data, "--out", out, "--time", "10s", *TINY)
    took = time.time() - t0
    assert r.exit_code == 0, r.output
    assert took < 10 + 3, took  # the budget counts the data's reading and the export too
    assert "(--time 10s)" in r.output and "epochs of the data in all" in r.output
    assert (out / "export" / "model.safetensors").is_file()
    first = json.loads((out / "export" / "config.json").read_text())["training"]["steps"]
    assert first > 15  # the length was planned from the timing: the default of 5 epochs is 15 steps here
    r = run("train", "--out", out, "--resume", "--time", "10s", "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert json.loads((out / "export" / "config.json").read_text())["training"]["steps"] > first


def test_a_time_that_is_no_duration_is_one_line(tmp_path):
    r = run("train", tmp_path, "--out", tmp_path / "run", "--time", "soon")
    assert r.exit_code == 2 and "--time" in r.output and "45m" in r.output and "Traceback" not in r.output


def test_a_run_that_needs_nearly_all_the_machines_memory_stops_after_one_step_saying_what_fits(tmp_path,
                                                                                                monkeypatch):
    from gancli.training import clock
    monkeypatch.setattr(clock, "machine_memory_gb", lambda: 0.05)  # as if on a machine far too small for it
    r = run("train", photos(tmp_path / "photos", side=32), "--out", tmp_path / "run", "--steps", 50, *TINY)
    assert r.exit_code == 2 and "of this machine's 0.1 GB" in r.output and "--batch-size 1" in r.output, r.output
    assert "Traceback" not in r.output and not (tmp_path / "run" / "export").exists()
    monkeypatch.undo()
    r = run("train", "--out", tmp_path / "run", "--resume", "--steps", 3, "--device", "cpu")  # nothing is stuck
    assert r.exit_code == 0 and (tmp_path / "run" / "export").is_dir(), r.output


def test_cyclegan_without_a_size_trains_on_crops_at_the_photos_scale(tmp_path):
    root = tmp_path / "h2z"
    photos(root / "trainA", n=4, side=160), photos(root / "trainB", n=4, side=160)
    r = run("train", root, "--arch", "cyclegan", "--out", tmp_path / "run", "--steps", 2, "--g-width", "4",
            "--d-width", "4", "--blocks", "1", "--device", "cpu", "--sample-every", "1000")
    assert r.exit_code == 0, r.output
    assert "--size 128 --load-size 179 chosen: 128 px crops of the photos at their own scale (160 px)" in r.output
    options = json.loads((tmp_path / "run" / "options.json").read_text())
    assert (options["size"], options["load_size"]) == (128, 179)  # a resume keeps them
