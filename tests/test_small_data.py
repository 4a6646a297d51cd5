"""`gan train` on a small folder of one's own photos: a batch the data can fill, a plan too short to learn named
before it runs, and sizes that cannot fit refused before anything is decoded."""
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tiny_families import run

from gancli.training.trainer import Trainer, TrainOptions

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def photos(tmp_path) -> Path:
    """60 small colour photos: a soft blob on a gradient, each somewhere else."""
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:40, :48]
    for i in range(60):
        cy, cx = rng.integers(8, 32), rng.integers(8, 40)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 40.0)
        img = np.stack([60 + 150 * blob, 40 + xx * 2 + 0 * blob, 200 - 150 * blob], -1)
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(folder / f"p{i:02d}.jpg")
    return folder


def test_the_readmes_command_trains_on_60_photos_with_a_batch_they_fill(photos, tmp_path):
    out = tmp_path / "run"
    r = run("train", photos, "--out", out, "--steps", 3, "--device", "cpu", "--g-width", 8, "--d-width", 8)
    assert r.exit_code == 0, r.output
    assert "--batch-size 8 chosen: 60 training images make 7 batches an epoch (the default 64 would make 0)" \
        in r.output
    assert "3 steps planned; dcgan draws shapes after about" in r.output and "give --steps" in r.output
    assert (out / "export" / "model.safetensors").is_file()
    resumed = run("train", "--out", out, "--resume", "--steps", 4, "--device", "cpu")
    assert resumed.exit_code == 0 and "--batch-size" not in resumed.output, resumed.output  # the run's own, kept


def test_a_given_batch_size_is_kept_and_refused_when_the_data_cannot_fill_it(photos, tmp_path):
    r = run("train", photos, "--out", tmp_path / "run", "--steps", 1, "--batch-size", 64, "--device", "cpu")
    assert r.exit_code == 2 and r.output.startswith("error: 60 training images is fewer than one step's 64"), \
        r.output


def test_a_time_run_says_its_length_will_be_planned_not_a_trillion_steps(photos, tmp_path):
    t = Trainer(TrainOptions(data=str(photos), out=str(tmp_path / "run"), time="10m", device="cpu", g_width=4,
                             d_width=4))
    try:
        (tmp_path / "run").mkdir(exist_ok=True)
        t.ctx.log_setup()
    finally:
        t.lock.release()
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "the length planned from the first steps' pace to end within --time 10m" in log
    assert "000000" not in log


def test_an_absurd_size_is_refused_in_one_line_within_seconds_and_little_memory(photos, tmp_path):
    peak = tmp_path / "peak"
    # gan's own entry point, and on its way out the process's peak memory (KiB) written down: VmHWM, which starts
    # afresh at exec (ru_maxrss would count the pages of the forking test process too)
    code = ("import atexit, sys; from gancli.cli import main; peak = sys.argv[1]; atexit.register(lambda: "
            "open(peak, 'w').write(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))); "
            "sys.argv = ['gan'] + sys.argv[2:]; main()")
    t0 = time.time()
    p = subprocess.run([sys.executable, "-c", code, str(peak), "train", str(photos), "--out", str(tmp_path / "run"),
                        "--size", "100000"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert p.returncode == 2 and p.stdout == "", p.stdout
    assert p.stderr.startswith("error: --size must be between 4 and 8,192, not 100,000") \
        and p.stderr.count("\n") == 1, p.stderr
    assert time.time() - t0 < 60 and not (tmp_path / "run").exists()
    assert 0 < int(peak.read_text()) < 2**20  # KiB: under 1 GB


def test_a_size_whose_data_would_not_fit_names_the_largest_that_does(photos, tmp_path, monkeypatch):
    from gancli import devices
    monkeypatch.setattr(devices, "machine_memory_bytes", lambda: 2**30)  # a 1 GB machine
    r = run("train", photos, "--out", tmp_path / "run", "--size", 2048, "--steps", 1, "--device", "cpu")
    assert r.exit_code == 2, r.output
    assert r.output.startswith(f"error: --size 2048: the 60 images of {photos} at 2048x2048 px would take 2.1 GB "
                               "while loading, more than half of this machine's 1.0 GB: the largest --size that "
                               "fits is 996"), r.output
    assert not (tmp_path / "run").exists()


def test_a_step_that_would_not_fit_is_refused_before_the_networks_are_built(tmp_path, monkeypatch):
    from conftest import make_image_folder

    from gancli import devices
    data = make_image_folder(tmp_path / "images")  # 24 digits-like rings: the batch is fitted to 4
    monkeypatch.setattr(devices, "machine_memory_bytes", lambda: int(1.5 * 2**30))  # a 1.5 GB machine
    r = run("train", data, "--out", tmp_path / "run", "--size", 512, "--steps", 1, "--device", "cpu")
    assert r.exit_code == 2, r.output
    assert r.output.startswith("error: a dcgan training step at 512 px and batch 4 needs about 1.3 GB"), r.output
    assert "the largest --size that fits is about 256" in r.output, r.output
    assert not (tmp_path / "run").exists()
    r = run("train", data, "--out", tmp_path / "run", "--size", 256, "--steps", 1, "--device", "cpu", "--g-width", 4,
            "--d-width", 4)
    assert r.exit_code == 0, r.output  # the size it named trains


def test_a_fitted_batch_is_whole_packs(tmp_path):
    from conftest import make_image_folder

    data = make_image_folder(tmp_path / "images", n_per_class=6)  # 12 images
    r = run("train", data, "--out", tmp_path / "run", "--steps", 1, "--pack", 4, "--device", "cpu", "--g-width", 4,
            "--d-width", 4)
    assert r.exit_code == 0, r.output
    assert "--batch-size 4 chosen" in r.output
