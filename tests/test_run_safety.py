"""A run directory loses nothing and never gets stuck: divergence, a full disk, crashes mid-write, two processes on
one directory, damaged files; and what the user is told (one line, a command to paste) says what is true."""
import errno
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from gancli.cli import app
from gancli.data.reading import load_data
from gancli.training import checkpoints
from gancli.training.trainer import Trainer, TrainError, TrainOptions

runner = CliRunner()
ENV = dict(os.environ, OMP_NUM_THREADS="1")
TINY = ["--batch-size", "8", "--g-width", "4", "--d-width", "4", "--latent-dim", "8", "--device", "cpu",
        "--sample-every", "1000"]


def options(data, out, **kw):
    base = dict(data=str(data), out=str(out), steps=6, batch_size=8, g_width=4, d_width=4, latent_dim=8,
                sample_every=1000, checkpoint_every=2, log_every=1, device="cpu")
    return TrainOptions(**(base | kw))


def error_lines(output: str) -> list[str]:
    return [l for l in output.splitlines() if l.startswith("error:")]


def pasted(output: str) -> list[str]:
    """The command between backticks in a message, as the shell would split it."""
    command = re.findall(r"`([^`]*)`", output)[-1]
    words = shlex.split(command)
    assert words[:2] == ["gan", "train"], command
    return words[1:]


# ------------------------------------------------------------------------------------------- 1. divergence
def test_each_rollback_lowers_the_learning_rate_further(image_folder, tmp_path, monkeypatch):
    """A model that diverges until its learning rate is 1/8 of the given one: three rollbacks must get there."""
    original = Trainer.train_step

    def diverges_unless_slow(self):
        stats = original(self)
        if self.step >= 2 and self.lr_scale > 0.2:
            stats["loss_g"] = torch.tensor(float("nan"))
        return stats

    monkeypatch.setattr(Trainer, "train_step", diverges_unless_slow)
    t = Trainer(options(image_folder, tmp_path / "r", steps=6))
    t.run()
    assert t.step == 6 and t.lr_scale == 0.125 and len(t.rollbacks) == 3
    log = (tmp_path / "r" / "log.txt").read_text()
    assert [float(x) for x in re.findall(r"learning rates x([\d.]+)", log)] == [0.5, 0.25, 0.125]
    last = json.loads((tmp_path / "r" / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["lr_g"] == pytest.approx(2e-4 / 8)


@pytest.mark.parametrize("flags", [["--lr-g", "inf"], ["--lr-d", "nan"], ["--lr-g", "1e30"], ["--lr-d", "1e3"],
                                   ["--arch", "vae", "--lr", "50"], ["--ema-decay", "nan"],
                                   ["--arch", "began", "--lambda-k", "inf"]])
def test_non_finite_and_absurd_settings_are_one_line_errors(image_folder, tmp_path, flags):
    r = runner.invoke(app, ["train", str(image_folder), "--out", str(tmp_path / "r"), "--steps", "2", "--device", "cpu",
                            *flags])
    assert r.exit_code == 2, r.output
    assert error_lines(r.output) and error_lines(r.output)[0].startswith(f"error: {flags[-2]} must be")
    assert len(r.output.strip().splitlines()) == 1 and not (tmp_path / "r").exists()


def test_a_finite_explosion_is_warned_once(image_folder, tmp_path, monkeypatch, capsys):
    original = Trainer.train_step

    def explodes(self):
        stats = original(self)
        if self.step >= 4:  # the step being taken is step + 1: from step 5 on, G's loss is in the billions
            stats["loss_g"] = stats["loss_g"] * 0 + 2e9
        return stats

    monkeypatch.setattr(Trainer, "train_step", explodes)
    Trainer(options(image_folder, tmp_path / "r", steps=8, log_every=2)).run()
    err = "".join(line for line in capsys.readouterr().err.splitlines(True) if "steps planned" not in line)
    assert err.count("warning:") == 1 and "loss_g reached 2e+09 at step 5" in err and "--lr-g" in err
    log = (tmp_path / "r" / "log.txt").read_text()
    assert log.count("loss_g reached 2e+09 at step 5") == 1


def test_a_healthy_run_is_not_warned(image_folder, tmp_path, capsys):
    Trainer(options(image_folder, tmp_path / "r", steps=6)).run()
    said = capsys.readouterr().err + (tmp_path / "r" / "log.txt").read_text()
    # but for the plan being shorter than a DCGAN needs (gancli.training.clock: learns_after), which is no loss watch's
    assert [line for line in said.splitlines() if "warning" in line and "steps planned" not in line] == []


# ------------------------------------------------------------------------------------------- 2. a full disk
def full_disk_at(monkeypatch, step: int):
    """The disk fills up while checkpoint ``step`` is written: some bytes reach the file, then ENOSPC."""
    real = checkpoints.atomic_write
    state = {"full": True}

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(bytes(data)[:100])
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.f, name)

    def writer(path, write):
        if state["full"] and path.name == f"step-{step:08d}.pt":
            return real(path, lambda f: write(Full(f)))
        return real(path, write)

    monkeypatch.setattr(checkpoints, "atomic_write", writer)
    return state


def test_a_full_disk_is_one_line_keeps_the_last_checkpoint_and_says_how_to_resume(image_folder, tmp_path,
                                                                                  monkeypatch):
    run = tmp_path / "my runs" / "r"
    disk = full_disk_at(monkeypatch, 4)
    r = runner.invoke(app, ["train", str(image_folder), "--out", str(run), "--steps", "6", "--checkpoint-every", "2",
                            *TINY])
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and "unexpected pos" not in r.output
    [line] = error_lines(r.output)
    assert "no space left" in line and str(run / "checkpoints" / "step-00000004.pt") in line
    assert re.search(r"needs [\d.]+ [KMG]B; [\d.]+ [KMG]B free", line) and "step-00000002.pt, is intact" in line
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-00000000.pt", "step-00000002.pt"]
    torch.load(run / "checkpoints" / "step-00000002.pt", weights_only=True)

    disk["full"] = False  # the user makes room, and pastes the command
    again = runner.invoke(app, pasted(line))
    assert again.exit_code == 0, again.output
    assert "resuming at step 2" in again.output and (run / "export" / "model.safetensors").is_file()


def test_a_full_disk_before_the_first_checkpoint_resumes_from_step_0(image_folder, tmp_path, monkeypatch):
    run = tmp_path / "r"
    disk = full_disk_at(monkeypatch, 0)
    r = runner.invoke(app, ["train", str(image_folder), "--out", str(run), "--steps", "3", *TINY])
    assert r.exit_code == 2 and (run / "options.json").is_file() and not list((run / "checkpoints").iterdir())
    [line] = error_lines(r.output)
    assert "no checkpoint was written yet" in line
    disk["full"] = False
    again = runner.invoke(app, pasted(line))
    assert again.exit_code == 0, again.output
    assert (run / "export" / "model.safetensors").is_file()
    assert [json.loads(l)["step"] for l in (run / "metrics.jsonl").read_text().splitlines()][-1] == 3


def test_leftovers_of_a_killed_write_are_removed_on_the_next_start(image_folder, tmp_path):
    run = tmp_path / "r"
    Trainer(options(image_folder, run, steps=4)).run()
    leftovers = [run / "checkpoints" / ".step-00000006.pt.tmp4242", run / ".metrics.jsonl.tmp4242"]
    for f in leftovers:
        f.write_bytes(b"\0" * 1000)
    Trainer(options(image_folder, run, steps=6, resume=True)).run()
    assert not any(f.exists() for f in leftovers)
    assert "removed checkpoints/.step-00000006.pt.tmp4242" in (run / "log.txt").read_text()


# ------------------------------------------------------------------------------------------- 3. never stuck
def _die_after_options_json(image_folder, run):
    """A real `gan train` SIGKILL'd after writing options.json, before its first checkpoint."""
    code = ("import os, signal, sys\n"
            "from gancli.training import trainer\n"
            "trainer.Trainer.save_checkpoint = lambda self: os.kill(os.getpid(), signal.SIGKILL)\n"
            "from gancli.cli import main\n"
            f"sys.argv = ['gan', 'train', {str(image_folder)!r}, '--out', {str(run)!r}, '--steps', '3', "
            f"*{TINY!r}]\n"
            "main()\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)
    assert p.returncode == -signal.SIGKILL, p.stderr
    assert (run / "options.json").is_file() and not (run / "checkpoints").exists()


def test_a_run_killed_before_its_first_checkpoint_can_be_continued(image_folder, tmp_path):
    killed = tmp_path / "killed"
    _die_after_options_json(image_folder, killed)
    for resume in (True, False):  # either way, without deleting anything
        run = tmp_path / f"resume-{resume}"
        shutil.copytree(killed, run)
        r = runner.invoke(app, ["train", str(image_folder), "--out", str(run), "--steps", "3", *TINY]
                          + (["--resume"] if resume else []))
        assert r.exit_code == 0, r.output
        assert "starting the run from step 0" in r.output
        assert (run / "export" / "model.safetensors").is_file()
        assert [json.loads(l)["step"] for l in (run / "metrics.jsonl").read_text().splitlines()] == [3]


def test_resume_of_nothing_is_still_an_error(image_folder, tmp_path):
    with pytest.raises(TrainError, match="no checkpoint to resume from"):
        Trainer(options(image_folder, tmp_path / "nothing", resume=True))
    assert not (tmp_path / "nothing").exists()


# ------------------------------------------------------------------------------------------- 4. one process per run
def _train_cmd(data, out, steps, *extra):
    return [sys.executable, "-m", "gancli", "train", str(data), "--out", str(out), "--steps", str(steps), *TINY,
            *extra]


def test_a_second_process_on_a_running_directory_is_refused_and_a_killed_one_leaves_no_lock(image_folder,
                                                                                            tmp_path):
    run = tmp_path / "r"
    first = subprocess.Popen(_train_cmd(image_folder, run, 100000, "--checkpoint-every", "5"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        deadline = time.time() + 120
        while not [p for p in run.glob("checkpoints/step-*.pt") if p.name != "step-00000000.pt"]:
            assert first.poll() is None and time.time() < deadline, "the first run did not start"
            time.sleep(0.05)
        for extra in (["--resume"], []):  # this test's process is the second one
            second = runner.invoke(app, ["train", str(image_folder), "--out", str(run), "--steps", "3", *TINY, *extra])
            assert second.exit_code == 2, second.output
            [line] = second.output.strip().splitlines()
            assert line.startswith("error:") and f"another process (pid {first.pid}," in line
    finally:
        first.kill()
        first.wait()
    # SIGKILL'd: the kernel dropped its lock; the run continues where its last checkpoint left it
    resumed = runner.invoke(app, ["train", str(image_folder), "--out", str(run), "--steps", "1", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert "resuming at step" in resumed.output


def test_a_trainer_in_this_process_holds_the_lock_until_it_ends(image_folder, tmp_path):
    run = tmp_path / "r"
    t = Trainer(options(image_folder, run, steps=2))
    with pytest.raises(TrainError, match=f"pid {os.getpid()}"):
        Trainer(options(image_folder, run, steps=2))
    t.run()
    Trainer(options(image_folder, run, steps=3, resume=True)).run()  # released at the end of run()


# ------------------------------------------------------------------------------------------- 5. damaged files
def test_a_cut_off_metrics_line_is_dropped_and_said(image_folder, tmp_path):
    run = tmp_path / "r"
    Trainer(options(image_folder, run, steps=4)).run()
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 5, "epoch": 1.6, "loss_d": 0.4')  # a kill in the middle of a write
    t = Trainer(options(image_folder, run, steps=6, resume=True))
    t.run()
    assert [json.loads(l)["step"] for l in (run / "metrics.jsonl").read_text().splitlines()] == list(range(1, 7))
    assert "metrics.jsonl: dropped 1 unreadable line(s)" in (run / "log.txt").read_text()


def test_a_corrupt_newest_checkpoint_falls_back_to_the_newest_intact_one(image_folder, tmp_path, capsys):
    straight, run = tmp_path / "straight", tmp_path / "r"
    Trainer(options(image_folder, straight, steps=8)).run()
    Trainer(options(image_folder, run, steps=6)).run()
    newest = run / "checkpoints" / "step-00000006.pt"
    newest.write_bytes(newest.read_bytes()[:5000])  # cut short
    t = Trainer(options(image_folder, run, steps=8, resume=True))
    assert t.step == 4
    err = capsys.readouterr().err
    assert "step-00000006.pt cannot be read" in err and "resumed from step-00000004.pt" in err
    t.run()
    assert (run / "checkpoints" / "step-00000006.pt.corrupt").is_file()  # kept, out of the way
    a = torch.load(straight / "checkpoints" / "step-00000008.pt", weights_only=True)["networks"]
    b = torch.load(run / "checkpoints" / "step-00000008.pt", weights_only=True)["networks"]
    assert all(torch.equal(a[n][k], b[n][k]) for n in a for k in a[n])  # still exact


# ------------------------------------------------------------------------------------------- 6. what the user reads
def test_the_interrupt_message_is_a_command_to_paste(tmp_path, monkeypatch):
    """Two data folders and paths with spaces and brackets (which the terminal's markup would eat)."""
    from conftest import make_image_folder

    a = make_image_folder(tmp_path / "domain [a]", classes=("x",), size=32, mode="RGB")
    b = make_image_folder(tmp_path / "domain b", classes=("y",), size=32, mode="RGB")
    run = tmp_path / "runs [v2]" / "cycle"
    original = Trainer.train_step

    def ctrl_c_at_2(self):
        if self.step == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self)

    monkeypatch.setattr(Trainer, "train_step", ctrl_c_at_2)
    r = runner.invoke(app, ["train", str(a), str(b), "--arch", "cyclegan", "--out", str(run), "--steps", "3",
                            "--size", "32", "--g-width", "4", "--d-width", "4", "--blocks", "1", "--batch-size",
                            "1", "--device", "cpu"])
    assert r.exit_code == 130, r.output
    words = pasted(r.output)
    assert words[1:3] == [str(a), str(b)] and words[words.index("--out") + 1] == str(run)
    monkeypatch.setattr(Trainer, "train_step", original)
    again = runner.invoke(app, words)
    assert again.exit_code == 0, again.output
    assert "resuming at step 2" in again.output and (run / "export" / "config.json").is_file()


def test_the_exported_card_names_a_folder_that_loads(image_folder, tmp_path):
    run = tmp_path / "r"
    r = runner.invoke(app, ["train", str(image_folder), "--out", str(run), "--steps", "2", "--name",
                            "dcgan-mnist500", *TINY])
    assert r.exit_code == 0, r.output
    card = (run / "export" / "README.md").read_text()
    use = card.split("## Use")[1].split("```bash\n")[1].splitlines()[0]
    assert "dcgan-mnist500" not in use
    words = shlex.split(use)
    assert words[:2] == ["gan", "sample"] and words[2] == str(run / "export")
    s = runner.invoke(app, words[1:3] + ["-n", "2", "-o", str(tmp_path / "g.png")])
    assert s.exit_code == 0, s.output
    assert (tmp_path / "g.png").is_file()


# ------------------------------------------------------------------------------------------- 7. the default size
def test_one_tiny_image_neither_sets_the_size_nor_hides(image_folder, tmp_path):
    Image.fromarray(np.full((1, 1), 255, np.uint8)).save(image_folder / "a" / "dot.png")
    Image.fromarray(np.full((20, 24), 255, np.uint8)).save(image_folder / "b" / "smaller.png")
    data = load_data(image_folder)
    assert data.image_size == 28 and len(data) == 25
    assert [f for f, _ in data.skipped] == ["a/dot.png"] and "1x1" in data.skipped[0][1]
    assert any("default --size 28: the most common shorter side (24 of 26" in n for n in data.notes)
    assert any("b/smaller.png, 24x20" in n for n in data.notes)

    run = tmp_path / "r"
    Trainer(options(image_folder, run, steps=2)).run()
    log = (run / "log.txt").read_text()
    assert "skipped a/dot.png: 1x1, far smaller" in log and "default --size 28" in log
    assert json.loads((run / "export" / "config.json").read_text())["image_size"] == 28
