import gzip
import json
import struct

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

import gancli
from gancli.cli import app
from gancli.data.reading import DataError, load_data
from gancli.training.trainer import Trainer, TrainError, TrainOptions

runner = CliRunner()


def options(data, out, **kw):
    base = dict(data=str(data), out=str(out), steps=6, batch_size=8, g_width=4, d_width=4, latent_dim=8,
                sample_every=3, checkpoint_every=3, log_every=2, device="cpu")
    return TrainOptions(**(base | kw))


def test_cli_train_writes_a_complete_run_that_sample_loads(image_folder, tmp_path):
    run = tmp_path / "run"
    r = runner.invoke(app, ["train", str(image_folder), "--arch", "dcgan", "--out", str(run), "--steps", "6",
                            "--batch-size", "8", "--g-width", "4", "--d-width", "4", "--latent-dim", "8",
                            "--sample-every", "3", "--checkpoint-every", "3", "--log-every", "2", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    for f in ("options.json", "log.txt", "metrics.jsonl", "progress.gif", "losses.png", "export/config.json",
              "export/model.safetensors", "export/README.md"):
        assert (run / f).is_file(), f
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "step-00000001.png", "step-00000003.png", "step-00000006.png"]
    with Image.open(run / "progress.gif") as gif:
        assert gif.n_frames == 3
    assert Image.open(run / "losses.png").size == (1000, 1140)  # four panels: losses, D outputs, V(D,G), lr
    opts = json.loads((run / "options.json").read_text())
    assert opts["arch"] == "dcgan" and opts["command"].startswith("gan train")
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6]
    assert {"loss_d", "loss_g", "d_real", "d_fake", "value", "images_per_s"} <= set(rows[0])
    card = (run / "export" / "README.md").read_text()
    assert card.startswith("---\nlicense:") and "gan train" in card
    r = runner.invoke(app, ["sample", str(run), "-n", "4", "-o", str(tmp_path / "s.png"), "--scale", "1"])
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "s.png").size == (2 * 30 + 2, 2 * 30 + 2)


def test_mlp_trains_and_exports(image_folder, tmp_path):
    t = Trainer(options(image_folder, tmp_path / "mlp", arch="mlp", g_width=None, d_width=None))
    export = t.run()
    m = gancli.load(export, device="cpu")
    assert m.architecture == "mlp" and m.sample(3, seed=0).shape == (3, 1, 28, 28)


def test_existing_run_needs_resume(image_folder, tmp_path):
    Trainer(options(image_folder, tmp_path / "r")).run()
    with pytest.raises(TrainError, match="--resume"):
        Trainer(options(image_folder, tmp_path / "r"))
    with pytest.raises(TrainError, match="no checkpoint"):
        Trainer(options(image_folder, tmp_path / "fresh", resume=True))


@pytest.mark.parametrize("arch", ["dcgan", "mlp"])
def test_resume_ends_with_the_same_weights(image_folder, tmp_path, arch):
    widths = {} if arch == "dcgan" else {"g_width": None, "d_width": None}
    straight = Trainer(options(image_folder, tmp_path / "a", arch=arch, steps=8, **widths))
    straight.run()
    first = Trainer(options(image_folder, tmp_path / "b", arch=arch, steps=5, **widths))
    first.run()
    resumed = Trainer(options(image_folder, tmp_path / "b", arch=arch, steps=8, resume=True, **widths))
    assert resumed.step == 5
    resumed.run()
    a = load_file(tmp_path / "a" / "export" / "model.safetensors")
    b = load_file(tmp_path / "b" / "export" / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    steps = [json.loads(l)["step"] for l in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps))


def test_checkpoints_are_pruned_and_readable_without_pickle(image_folder, tmp_path):
    t = Trainer(options(image_folder, tmp_path / "r", steps=12, checkpoint_every=2, keep_checkpoints=2))
    t.run()
    ckpts = sorted((tmp_path / "r" / "checkpoints").iterdir())
    assert [p.name for p in ckpts] == ["step-00000010.pt", "step-00000012.pt"]
    state = torch.load(ckpts[-1], weights_only=True)
    assert state["step"] == 12 and {"g", "d"} == set(state["optimizers"])


def test_bad_files_are_skipped_and_logged(image_folder, tmp_path):
    (image_folder / "a" / "empty.png").write_bytes(b"")
    (image_folder / "b" / "notes.jpg").write_text("not an image")
    good = (image_folder / "a" / "000.png").read_bytes()
    (image_folder / "a" / "cut.png").write_bytes(good[: len(good) // 2])
    t = Trainer(options(image_folder, tmp_path / "r"))
    assert len(t.data) == 24 and len(t.data.skipped) == 3
    t.run()
    log = (tmp_path / "r" / "log.txt").read_text()
    assert "empty.png" in log and "notes.jpg" in log and "skipped 3" in log


def test_empty_or_all_bad_folder_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        load_data(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError, match="could be read"):
        load_data(tmp_path / "bad")


def test_too_few_images_for_a_batch(image_folder, tmp_path):
    with pytest.raises(TrainError, match="fewer than one step"):
        Trainer(options(image_folder, tmp_path / "r", batch_size=64))


def _write_idx(path, array):
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_idx_folder_is_read_with_labels(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (20, 28, 28))
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(20) % 10)
    data = load_data(tmp_path)
    assert data.images.shape == (20, 1, 28, 28) and data.images.dtype == torch.uint8
    assert torch.equal(data.images[3, 0], torch.from_numpy(images[3].astype(np.uint8)))
    assert data.labels.tolist()[:12] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1] and len(data.class_names) == 10


def test_truncated_idx_is_an_error(tmp_path):
    with gzip.open(tmp_path / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">BBBBIII", 0, 0, 8, 3, 100, 28, 28) + b"\0" * 50)
    with pytest.raises(DataError, match="truncated"):
        load_data(tmp_path)


def test_folder_preprocessing(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    rgba = np.zeros((40, 60, 4), np.uint8)  # fully transparent -> white, not black
    Image.fromarray(rgba, "RGBA").save(d / "clear.png")
    wide = np.zeros((40, 60, 3), np.uint8)
    wide[:, :30] = 255  # left half white
    im = Image.fromarray(wide)
    exif = im.getexif()
    exif[0x0112] = 3  # orientation: rotated 180 degrees -> the white half must end up on the right
    im.save(d / "rot.jpg", exif=exif, quality=100)
    data = load_data(d, size=32)
    assert data.images.shape == (2, 3, 32, 32) and data.labels is None
    clear, rot = data.images[0].float(), data.images[1].float()
    assert clear.mean() > 250
    assert rot[:, :, 24:].mean() > 200 and rot[:, :, :8].mean() < 50


def test_a_resumed_runs_card_shows_one_command_that_sets_the_whole_run_up(image_folder, tmp_path):
    run = tmp_path / "r"
    base = ["train", str(image_folder), "--arch", "dcgan", "--out", str(run), "--batch-size", "8", "--g-width", "4",
            "--d-width", "4", "--latent-dim", "8", "--lr-g", "0.0003", "--mirror", "--device", "cpu"]
    assert runner.invoke(app, base + ["--steps", "2"]).exit_code == 0
    r = runner.invoke(app, ["train", str(image_folder), "--out", str(run), "--steps", "4", "--resume"])
    assert r.exit_code == 0, r.output
    command = json.loads((run / "export" / "config.json").read_text())["training"]["command"]
    assert command.startswith(f"gan train {image_folder} --arch dcgan") and "--resume" not in command
    for words in ("--lr-g 0.0003", "--mirror", "--g-width 4", "--latent-dim 8", "--steps 4", f"--out {run}"):
        assert words in command, words
    assert "--lr-d" not in command  # left at its default
    assert command in (run / "export" / "README.md").read_text()


def test_a_short_run_still_plots_and_a_resumed_one_counts_its_own_steps(image_folder, tmp_path):
    run = tmp_path / "short"
    base = ["train", str(image_folder), "--arch", "dcgan", "--out", str(run), "--batch-size", "8", "--g-width", "4",
            "--d-width", "4", "--latent-dim", "8", "--device", "cpu"]
    r = runner.invoke(app, base + ["--steps", "3"])  # one metrics row (--log-every 50): a figure all the same
    assert r.exit_code == 0, r.output
    assert (run / "losses.png").is_file() and "trained 3 steps" in r.output
    r = runner.invoke(app, ["train", str(image_folder), "--out", str(run), "--steps", "5", "--resume"])
    assert r.exit_code == 0, r.output
    assert "trained 2 steps (5 in all)" in r.output


def test_an_empty_out_is_refused_not_replaced_by_the_default(image_folder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["train", str(image_folder), "--out", " ", "--steps", "2", "--device", "cpu"])
    assert r.exit_code == 2 and "--out needs a folder name" in r.output
    assert not (tmp_path / "runs").exists()


def test_resume_finds_relative_data_from_any_folder_and_says_when_it_has_moved(tmp_path, monkeypatch):
    from conftest import make_image_folder

    home = tmp_path / "home"
    make_image_folder(home / "photos")
    common = ["--device", "cpu", "--g-width", "4", "--d-width", "4", "--latent-dim", "8", "--batch-size", "8"]
    monkeypatch.chdir(home)
    r = runner.invoke(app, ["train", "photos", "--out", "runs/p", "--steps", "2", *common])
    assert r.exit_code == 0, r.output
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    r = runner.invoke(app, ["train", "--out", str(home / "runs" / "p"), "--resume", "--steps", "3", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["train", "../home/photos", "--out", str(home / "runs" / "p"), "--resume", "--steps", "4",
                            "--device", "cpu"])  # the same folder, written another way
    assert r.exit_code == 0, r.output
    rows = [json.loads(l) for l in (home / "runs" / "p" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 4
    (home / "photos").rename(home / "moved")
    r = runner.invoke(app, ["train", "--out", str(home / "runs" / "p"), "--resume", "--steps", "5", "--device", "cpu"])
    assert r.exit_code == 2 and r.output.startswith("error: --resume: this run's data") \
        and "is not there any more" in r.output and str(home / "photos") in r.output, r.output
    r = runner.invoke(app, ["train", str(home / "moved"), "--out", str(home / "runs" / "p"), "--resume", "--steps", "5",
                            "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert f"the data was {home / 'photos'}, which is gone; continuing on {home / 'moved'}" in \
        (home / "runs" / "p" / "log.txt").read_text()
