"""Every family through the same loop, API and CLI: options, exact resume after SIGKILL, and the recorded
command; what `gan eval` adds for any sampler (novelty)."""
import json
import subprocess
import sys

import pytest
import torch
from conftest import sigkill_after_checkpoint
from PIL import Image
from safetensors.torch import load_file
from tiny_families import (
    BEGAN_TRAIN,
    DESIGN_TRAIN,
    DISCO_TRAIN,
    SSGAN_MLP_TRAIN,
    STYLE_TRAIN,
    VAE_TRAIN,
    _cmd,
    _final_state,
    needs_fashion,
    needs_mnist,
    run,
)

import gancli


# ------------------------------------------------------------------------------------------------ options
def test_each_family_shows_its_own_options_in_help():
    r = run("train", "--help")
    assert r.exit_code == 0
    for panel, flag in (("stylegan options", "--r1-gamma"), ("vae options", "--kl-weight"),
                        ("cyclegan options", "--cycle-weight")):
        assert panel in r.output and flag in r.output


@pytest.mark.parametrize("arch,flag,names", [("dcgan", "--r1-gamma", "--g-width"), ("vae", "--loss", "--kl-weight"),
                                             ("stylegan", "--blocks", "--style-mixing")])
def test_an_option_of_another_family_is_a_one_line_error(image_folder, tmp_path, arch, flag, names):
    r = run("train", image_folder, "--arch", arch, "--out", tmp_path / "r", flag, "1")
    assert r.exit_code == 2 and r.output.startswith("error:") and r.output.count("\n") == 1
    assert f"{flag} is not an option of {arch}" in r.output and names in r.output
    assert not (tmp_path / "r").exists()


def test_bad_option_values_are_refused(image_folder, tmp_path):
    r = run("train", image_folder, "--arch", "stylegan", "--out", tmp_path / "r", "--style-mixing", "2")
    assert r.exit_code == 2 and "--style-mixing must be between 0 and 1" in r.output
    r = run("train", image_folder, "--arch", "stylegan", "--out", tmp_path / "r", "--size", "24")
    assert r.exit_code == 2 and "power of two" in r.output


# ------------------------------------------------------------------------------------------------ exact resume
# stylegan's run also measures itself: building the judge must not disturb training's random stream
@pytest.mark.parametrize("family_args", [STYLE_TRAIN + ["--eval-every", "5", "--eval-samples", "100"], VAE_TRAIN,
                                         BEGAN_TRAIN, DISCO_TRAIN, SSGAN_MLP_TRAIN, DESIGN_TRAIN],
                         ids=["stylegan", "vae", "began", "discogan", "ssgan", "design"])
def test_a_run_killed_with_sigkill_resumes_bit_identically(image_folder, tmp_path, family_args):
    steps = 40
    straight = run(*_cmd(image_folder, tmp_path / "straight", steps, family_args)[3:])  # in this process: 2 s less
    assert straight.exit_code == 0, straight.output
    cut = tmp_path / "cut"
    proc = subprocess.Popen(_cmd(image_folder, cut, steps, family_args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    sigkill_after_checkpoint(proc, cut)
    # resumed as a user would after a crash: no length given, so the run's own 40 steps (not the default 5 epochs)
    again = [w for w in _cmd(image_folder, cut, steps, family_args, "--resume") if w not in ("--steps", str(steps))]
    resumed = run(*again[3:])  # in this process too: the killed run was the real process that matters
    assert resumed.exit_code == 0, resumed.output
    a, b = load_file(tmp_path / "straight" / "export" / "model.safetensors"), load_file(cut / "export" /
                                                                                          "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    sa, sb = _final_state(tmp_path / "straight"), _final_state(cut)
    assert all(torch.equal(sa[n][k], sb[n][k]) for n in sa for k in sa[n])  # discriminator too
    rows = [json.loads(l) for l in (cut / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "event" not in r] == list(range(1, steps + 1))


def test_resume_takes_the_runs_own_settings(image_folder, tmp_path):
    run_dir = tmp_path / "r"
    r = run("train", image_folder, "--out", run_dir, "--steps", 3, "--device", "cpu", "--sample-every", 2,
            *STYLE_TRAIN)
    assert r.exit_code == 0, r.output
    r = run("train", "--out", run_dir, "--steps", 5, "--device", "cpu", "--resume")
    assert r.exit_code == 0, r.output  # no data, no --arch, no widths: they come from the run's options.json
    assert "training stylegan" in r.output and json.loads((run_dir / "export" / "config.json").read_text())[
        "training"]["steps"] == 5
    assert (run_dir / "samples" / "step-00000004.png").is_file()  # --sample-every 2 carried on
    r = run("train", image_folder, "--out", run_dir, "--steps", 6, "--device", "cpu", "--resume", "--w-dim", 16)
    assert r.exit_code == 2 and "w_dim was 8 in this run" in r.output


def test_train_without_data_says_what_to_give(tmp_path):
    r = run("train", "--out", tmp_path / "new")
    assert r.exit_code == 2 and r.output.startswith("error: give the training data") and "--resume" in r.output
    r = run("train", "--out", tmp_path / "new", "--resume")
    assert r.exit_code == 2 and "holds no run to continue" in r.output
    assert not (tmp_path / "new").exists()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "options.json").write_text("{cut short")
    r = run("train", "--out", tmp_path / "broken", "--resume")
    assert r.exit_code == 2 and "cannot be read" in r.output and r.output.count("\n") == 1, r.output


def test_resume_without_data_from_another_folder_finds_a_relative_path(image_folder, tmp_path, monkeypatch):
    import shutil

    shutil.copytree(image_folder, tmp_path / "imgs")
    monkeypatch.chdir(tmp_path)
    r = run("train", "imgs", "--out", tmp_path / "r", "--steps", 2, "--device", "cpu", *VAE_TRAIN)
    assert r.exit_code == 0, r.output
    (tmp_path / "r" / "imgs").mkdir()  # elsewhere, "imgs" is another folder: not the run's data
    monkeypatch.chdir(tmp_path / "r")
    r = run("train", "--out", tmp_path / "r", "--steps", 3, "--resume")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "r" / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 3


def test_vae_trains_under_torchrun(image_folder, tmp_path):
    import os

    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--standalone",
                        "-m", "gancli", "train", str(image_folder), "--out", str(tmp_path / "ddp"),
                        "--steps", "3", "--device", "cpu", *VAE_TRAIN], capture_output=True, text=True, env=env,
                       timeout=300)
    assert p.returncode == 0, p.stderr[-8000:]
    assert gancli.load(tmp_path / "ddp", device="cpu").encode(torch.zeros(2, 1, 28, 28)).shape == (2, 4)


def test_stylegan_run_records_r1_and_exports_only_the_generator(image_folder, tmp_path):
    r = run("train", image_folder, "--out", tmp_path / "s", "--steps", 6, "--device", "cpu", "--log-every", 3,
            *STYLE_TRAIN)
    assert r.exit_code == 0, r.output
    rows = [json.loads(l) for l in (tmp_path / "s" / "metrics.jsonl").read_text().splitlines()]
    assert "r1" in rows[0] and rows[0]["lr_g"] == 0.0025  # StyleGAN2's learning rate is the family's default
    weights = load_file(tmp_path / "s" / "export" / "model.safetensors")
    assert all(k.startswith("generator.") for k in weights)
    options = json.loads((tmp_path / "s" / "options.json").read_text())
    assert options["style_mixing"] == 0.9 and options["beta1"] == 0.0
    assert "gan mix" in (tmp_path / "s" / "export" / "README.md").read_text()


@needs_mnist
@needs_fashion
def test_the_recorded_command_is_the_one_typed(image_folder, tmp_path):
    r = run("train", image_folder, "--out", tmp_path / "c", "--steps", 1, "--no-mirror", "--ema", "--device", "cpu",
            *VAE_TRAIN)
    assert r.exit_code == 0, r.output
    options = json.loads((tmp_path / "c" / "options.json").read_text())
    assert options["mirror"] is False and options["ema"] is True and options["arch"] == "vae"
    assert "--no-mirror" in options["command"] and "--ema" in options["command"]
    assert options["command"].startswith("gan train ")


@needs_mnist
def test_eval_novelty_tells_copies_from_new_images(tiny_model_dir, tmp_path, shared_references):
    """A "generator" that returns training digits is a copier: distance 0 to the training set. Real test digits are
    new, at a distance like a good generator's."""
    from gancli.data.datasets import DATASETS, find, load_idx_split
    from gancli.evaluation.evaluate import build_reference, novelty
    from gancli.quality.judges import load_judge

    judge = load_judge("classifier-mnist")
    model = gancli.load(tiny_model_dir, device="cpu")
    ref = build_reference("mnist", judge, DATASETS["mnist"], size=model.image_size)  # as `gan eval` builds it
    train = load_idx_split(find(DATASETS["mnist"]), "train").images
    model.generate = lambda z, labels=None, batch_size=256, truncation=None: iter([train[:len(z)].float() / 127.5 - 1])
    r = novelty(model, ref, DATASETS["mnist"], n=200, grid_path=tmp_path / "nearest.png")
    assert r["nearest_train_distance"] < 0.05 and r["real_nearest_train_distance"] > 3
    assert 0 <= r["class_entropy"] < 0.5 and 0 <= r["real_class_entropy"] < 0.5  # digits are clearly one class
    with Image.open(tmp_path / "nearest.png") as im:
        assert im.size == (8 * 30 + 2, 2 * 30 + 2)  # 8 samples above their nearest training images
    r = run("eval", tiny_model_dir, "--real", "mnist", "-n", 100, "--novelty", "--novelty-grid",
            tmp_path / "g.png", "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert "nearest_train_distance" in r.output and (tmp_path / "g.png").is_file()
