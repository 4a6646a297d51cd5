"""What a run shows of itself: losses.png and quality.png drawn with matplotlib to show the theory, sample grids and
progress.gif frames that say their step, and --tensorboard events that hold metrics.jsonl's numbers."""
import json
import math
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from gancli.cli import app
from gancli.data.imageio import captioned, grid_image
from gancli.training import plots
from gancli.training.trainer import Trainer, TrainOptions

runner = CliRunner()
TINY = dict(batch_size=8, latent_dim=8, device="cpu", log_every=2, sample_every=3, checkpoint_every=3)
FAMILY = {"dcgan": dict(g_width=4, d_width=4),
          "vae": dict(latent_dim=4, vae_width=4, hidden=16),
          "began": dict(latent_dim=4, g_width=4, d_width=4, bottleneck=4)}


def train(data, out, arch="dcgan", steps=6, **kw) -> Trainer:
    trainer = Trainer(TrainOptions(data=str(data), out=str(out), arch=arch, steps=steps,
                                   **(TINY | FAMILY[arch] | kw)))
    trainer.run()
    return trainer


def rows_of(run, event=None):
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines() if l.strip()]
    return [r for r in rows if r.get("event") == event]


def drawn(trainer):
    """The figure write_progress saved as losses.png, as matplotlib objects to read back."""
    panels = plots.training_panels(rows_of(trainer.out), trainer.objective.shown, trainer.objective.guides)
    return panels, plots.figure(panels, trainer.objective.title, 1.0)


def guide_levels(ax):
    return sorted(round(float(line.get_ydata()[0]), 4) for line in ax.get_lines() if line.get_linestyle() == "--"
                  and len(set(line.get_ydata())) == 1 and line.get_label()[0] in "1-")


def test_losses_png_shows_the_theory_of_the_adversarial_game(image_folder, tmp_path):
    trainer = train(image_folder, tmp_path / "run")
    panels, fig = drawn(trainer)
    axes = fig.axes[:len(panels)]
    assert [ax.get_title(loc="left") for ax in axes] == [
        "losses", "discriminator outputs, mean over the batch", plots.VALUE_TITLE, "learning rate"]
    with Image.open(tmp_path / "run" / "losses.png") as im:  # the saved file is that figure: 4 panels, not 1
        assert im.size == (1000, round(100 * (1.0 + 2.6 * 4)))
    losses, d, value, lr = axes
    rows = rows_of(tmp_path / "run")
    by_label = {line.get_label(): line for ax in axes for line in ax.get_lines()}
    assert list(by_label["loss_d"].get_ydata()) == [r["loss_d"] for r in rows]  # the logged numbers, step by step
    assert list(by_label["D(G(z))  (d_fake)"].get_xdata()) == [r["step"] for r in rows]
    assert guide_levels(d) == [0.5] and guide_levels(value) == [round(-math.log(4), 4)]
    assert guide_levels(losses) == [] and {l.get_label() for l in lr.get_lines()} == {"g", "d"}
    assert axes[-1].get_xlabel() == "step" and all(ax.get_ylabel() for ax in axes)
    assert "epoch" in [child.get_xlabel() for child in axes[-1].child_axes]  # epochs as a second x axis
    assert fig.get_suptitle() == "dcgan / ns"


@pytest.mark.parametrize("loss,levels,panels", [
    ("lsgan", [0.5], ["losses", "discriminator outputs, mean over the batch", "learning rate"]),
    ("hinge", [], ["losses", "discriminator outputs, mean over the batch", "learning rate"])])
def test_the_equilibrium_line_is_drawn_only_where_the_loss_has_one(image_folder, tmp_path, loss, levels, panels):
    """A critic's scores (hinge, wgan-gp) have no 1/2 to reach; LSGAN's 0/1 targets do, and no V(D, G) is logged."""
    trainer = train(image_folder, tmp_path / "run", steps=4, loss=loss)
    found, fig = drawn(trainer)
    assert [p.title for p in found] == panels
    assert guide_levels(fig.axes[1]) == levels


@pytest.mark.parametrize("arch,titles", [("vae", ["losses", "reconstruction", "kl", "learning rate"]),
                                         ("began", ["losses", "m_global", "k", "learning rate"])])
def test_families_without_d_outputs_plot_what_they_log(image_folder, tmp_path, arch, titles):
    trainer = train(image_folder, tmp_path / "run", arch=arch, steps=4)
    panels, fig = drawn(trainer)
    assert [p.title for p in panels] == titles
    assert all(guide_levels(ax) == [] for ax in fig.axes[:len(panels)])
    assert all(len(points) == 2 for p in panels for points in p.series.values())  # rows at steps 2 and 4
    with Image.open(tmp_path / "run" / "losses.png") as im:
        assert im.size == (1000, round(100 * (1.0 + 2.6 * len(titles))))


def test_quality_png_draws_the_eval_rows(tmp_path):
    evals = [{"step": s, "event": "eval", "fid": 9.0 / s, "kid": 0.1 / s, "precision": 0.5, "recall": 0.1 * s,
              "diversity": 0.5 * s, "real_diversity": 2.0, "classes_covered": s, "num_classes": 10, "alarms": []}
             for s in (1, 2, 3)]
    panels = plots.quality_panels(evals)
    assert [p.title for p in panels] == ["FID (lower is better)", "KID (lower is better)",
                                         "precision, recall, diversity and coverage"]
    assert panels[2].series["coverage"] == [(1, 0.1), (2, 0.2), (3, 0.3)]
    assert panels[2].series["diversity / real"] == [(1, 0.25), (2, 0.5), (3, 0.75)]
    plots.save_figure(panels, tmp_path / "quality.png", "q", 0.5)
    with Image.open(tmp_path / "quality.png") as im:
        assert im.size == (1000, round(100 * (1.0 + 2.6 * 3)))


def test_sample_grids_and_progress_frames_say_their_step(image_folder, tmp_path):
    trainer = train(image_folder, tmp_path / "run")
    samples = tmp_path / "run" / "samples"
    final = np.asarray(Image.open(samples / "step-00000006.png"))
    images, nrow = trainer.grid_images()  # what the last grid drew: the samples' pixels are unchanged, moved down
    expected = np.asarray(captioned(grid_image(images, nrow), "step 6"))
    assert final.shape == expected.shape and np.array_equal(final, expected)
    strip = final.shape[0] - np.asarray(grid_image(images, nrow)).shape[0]
    assert strip > 8 and final[:strip].max() > 200  # a caption strip with light text in it
    first = np.asarray(Image.open(samples / "step-00000001.png"))
    assert not np.array_equal(first[:strip], final[:strip])  # "step 1" is not "step 6"
    blank = Image.new("L", (final.shape[1], final.shape[0] - strip))
    with Image.open(tmp_path / "run" / "progress.gif") as gif:
        for k, step in enumerate((1, 3, 6)):
            gif.seek(k)
            frame = np.asarray(gif.convert("L"))
            assert np.array_equal(frame[:strip], np.asarray(captioned(blank, f"step {step}"))[:strip])


def _scalars(folder, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc, [(e.step, e.value) for e in acc.Scalars(tag)]


def test_tensorboard_holds_the_metrics_rows_and_the_grids(image_folder, tmp_path):
    run = tmp_path / "run"
    r = runner.invoke(app, ["train", str(image_folder), "--out", str(run), "--steps", "6", "--batch-size", "8",
                            "--g-width", "4", "--d-width", "4", "--latent-dim", "8", "--log-every", "2",
                            "--sample-every", "3", "--checkpoint-every", "3", "--device", "cpu", "--tensorboard"])
    assert r.exit_code == 0, r.output
    rows = rows_of(run)
    acc, loss_d = _scalars(run / "tensorboard", "train/loss_d")
    assert [s for s, _ in loss_d] == [r["step"] for r in rows] == [2, 4, 6]
    for key in ("loss_d", "loss_g", "d_real", "d_fake", "value", "lr_g", "epoch"):
        _, logged = _scalars(run / "tensorboard", f"train/{key}")
        assert [v for _, v in logged] == pytest.approx([r[key] for r in rows], rel=1e-6), key  # float32 of the same
    assert [e.step for e in acc.Images("samples")] == [1, 3, 6]

    # a resumed run carries --tensorboard on, and events after the checkpoint it resumes from (step 3, as if the
    # first session had been killed before its last checkpoint) are not doubled
    (run / "checkpoints" / "step-00000006.pt").unlink()
    (run / "export" / "config.json").unlink()
    r = runner.invoke(app, ["train", str(image_folder), "--out", str(run), "--steps", "8", "--resume"])
    assert r.exit_code == 0, r.output
    rows = rows_of(run)
    _, loss_d = _scalars(run / "tensorboard", "train/loss_d")
    assert [s for s, _ in loss_d] == [r["step"] for r in rows] == [2, 4, 6, 8]
    assert [v for _, v in loss_d] == pytest.approx([r["loss_d"] for r in rows], rel=1e-6)


def test_tensorboard_missing_is_one_line_saying_how_to_install_it(image_folder, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    r = runner.invoke(app, ["train", str(image_folder), "--out", str(tmp_path / "run"), "--steps", "2",
                            "--device", "cpu", "--tensorboard"])
    assert r.exit_code == 2
    assert r.output.strip() == ("error: --tensorboard needs the tensorboard package: pip install tensorboard  "
                                "(in a gancli checkout: pip install '.[tensorboard]')")
    assert not (tmp_path / "run").exists()  # nothing started


def test_gan_version_loads_neither_matplotlib_nor_tensorboard():
    code = ("import sys, gancli.cli\nsys.argv = ['gan', '--version']\ntry:\n    gancli.cli.main()\n"
            "except SystemExit:\n    pass\nsys.exit(any(m in sys.modules for m in ('torch', 'matplotlib', "
            "'tensorboard')))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
