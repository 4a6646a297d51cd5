"""The StyleGAN and VAE families through the same loop, API and CLI as every other family: options, exact resume
after SIGKILL, truncation, style mixing, w-space walks, encoding real images, and what `gan eval` adds."""
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

import gancli
from gancli.cli import app
from gancli.pretrained import GANModel

from conftest import SHARED, sigkill_after_checkpoint

runner = CliRunner()
needs_mnist = pytest.mark.skipif(not (SHARED / "mnist").is_dir(), reason="needs ../shared/data/mnist")
needs_fashion = pytest.mark.skipif(not (SHARED / "fashion-mnist").is_dir(),
                                   reason="needs ../shared/data/fashion-mnist")
CARD = "---\nlicense: mit\nlibrary_name: gancli\ntags:\n- gan\n---\n# t\n"
TINY_STYLE = {"latent_dim": 8, "image_size": 16, "channels": 1, "w_dim": 8, "mapping_layers": 2, "g_width": 4,
              "d_width": 4, "max_width": 16}
TINY_VAE = {"latent_dim": 4, "image_size": 28, "channels": 1, "width": 4, "hidden": 16}


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def style_dir(tmp_path):
    """A random-weight 16 px StyleGAN whose average w is not zero, saved in zoo layout."""
    torch.manual_seed(0)
    m = GANModel.from_config({"architecture": "stylegan", "arch_args": TINY_STYLE, "latent_dim": 8,
                              "image_size": 16, "channels": 1, "name": "tiny-style", "dataset": "synthetic"})
    for p in m.generator.synthesis.parameters():
        torch.nn.init.normal_(p, 0.0, 0.5)
    m.generator.mapping.w_avg.normal_()
    return m.save_pretrained(tmp_path / "style", card=CARD, include_discriminator=False)


@pytest.fixture
def vae_dir(tmp_path):
    torch.manual_seed(0)
    m = GANModel.from_config({"architecture": "vae", "arch_args": TINY_VAE, "latent_dim": 4, "image_size": 28,
                              "channels": 1, "name": "tiny-vae", "dataset": "mnist"})
    return m.save_pretrained(tmp_path / "vae", card=CARD)


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
STYLE_TRAIN = ["--arch", "stylegan", "--size", "16", "--g-width", "4", "--d-width", "4", "--w-dim", "8",
               "--latent-dim", "8", "--mapping-layers", "2", "--max-width", "16", "--r1-every", "3", "--ema",
               "--batch-size", "8"]
VAE_TRAIN = ["--arch", "vae", "--latent-dim", "4", "--vae-width", "4", "--hidden", "16", "--batch-size", "8"]
DISCO_TRAIN = ["--arch", "discogan", "--domains", "ring:0,grey:1", "--size", "16", "--g-width", "4", "--d-width",
               "4", "--batch-size", "4"]
SSGAN_TRAIN = ["--arch", "ssgan", "--ssgan-net", "conv", "--labels-per-class", "3", "--g-width", "4", "--d-width",
               "4", "--latent-dim", "8", "--batch-size", "4"]
SSGAN_MLP_TRAIN = ["--arch", "ssgan", "--labels-per-class", "3", "--latent-dim", "8", "--batch-size", "4"]
DESIGN_TRAIN = ["--arch", "design", "--g-width", "4", "--d-width", "4", "--latent-dim", "8", "--batch-size", "8"]
BEGAN_TRAIN = ["--arch", "began", "--latent-dim", "4", "--g-width", "4", "--d-width", "4", "--bottleneck", "4",
               "--batch-size", "8", "--lambda-k", "0.05"]


def _cmd(data, out, steps, family_args, *extra):
    """A checkpoint every 4 steps: the kill lands between two, so the resumed run also replays steps the killed one
    had taken (and logged), which must come out the same."""
    return [sys.executable, "-m", "gancli", "train", str(data), "--out", str(out), "--steps", str(steps), "--device",
            "cpu", "--log-every", "1", "--sample-every", "1000", "--checkpoint-every", "4", *family_args, *extra]


def _final_state(run):
    state = torch.load(sorted((run / "checkpoints").glob("step-*.pt"))[-1], weights_only=True)
    return state["networks"]


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
    resumed = subprocess.run(again, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
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


def test_resume_without_data_from_another_folder_refuses_a_relative_path(image_folder, tmp_path, monkeypatch):
    import shutil

    shutil.copytree(image_folder, tmp_path / "imgs")
    monkeypatch.chdir(tmp_path)
    r = run("train", "imgs", "--out", tmp_path / "r", "--steps", 2, "--device", "cpu", *VAE_TRAIN)
    assert r.exit_code == 0, r.output
    monkeypatch.chdir(tmp_path / "r")  # elsewhere, "imgs" would be another folder (or none)
    r = run("train", "--out", tmp_path / "r", "--steps", 3, "--resume")
    assert r.exit_code == 2 and f"relative to {tmp_path}" in r.output, r.output
    monkeypatch.chdir(tmp_path)
    r = run("train", "--out", tmp_path / "r", "--steps", 3, "--resume")
    assert r.exit_code == 0, r.output


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


# ------------------------------------------------------------------------------------------------ truncation
def _spread(x):
    return float(x.flatten(1).std(0).mean())


def test_truncation_pulls_samples_towards_the_average(style_dir):
    m = gancli.load(style_dir, device="cpu")
    full, half, none = (m.sample(32, seed=0, truncation=psi) for psi in (1.0, 0.5, 0.0))
    assert torch.equal(full, m.sample(32, seed=0))  # psi 1 is no truncation
    assert _spread(none) < 1e-5  # psi 0: every sample is the average-w image
    assert _spread(half) < 0.9 * _spread(full)
    w = m.map(m.latents_for(4, 0), truncation=0.0)
    assert torch.allclose(w, m.generator.mapping.w_avg.expand(4, -1))


def test_truncation_on_a_model_without_styles_is_refused(tiny_model_dir, tmp_path):
    r = run("sample", tiny_model_dir, "--truncation", "0.7", "-o", tmp_path / "x.png")
    assert r.exit_code == 2 and "--truncation is for stylegan models" in r.output
    r = run("sample", "dcgan-mnist", "-n", 4, "--truncation", "0.7", "-o", tmp_path / "x.png")
    assert r.exit_code == 2


def test_sample_cli_with_truncation(style_dir, tmp_path):
    r = run("sample", style_dir, "-n", 4, "--truncation", "0", "-o", tmp_path / "t.png")
    assert r.exit_code == 0 and "truncation 0" in r.output
    with Image.open(tmp_path / "t.png") as im:
        a = np.asarray(im)
    cells = [a[2 + 18 * r:18 + 18 * r, 2 + 18 * c:18 + 18 * c] for r in range(2) for c in range(2)]
    assert all((cell == cells[0]).all() for cell in cells)


# ------------------------------------------------------------------------------------------------ style mixing
def test_mix_writes_the_papers_grid(style_dir, tmp_path):
    r = run("mix", style_dir, "--rows", "1,2", "--cols", "3,4,5", "--levels", "coarse", "-o", tmp_path / "mix.png")
    assert r.exit_code == 0, r.output
    with Image.open(tmp_path / "mix.png") as im:
        assert im.size == (4 * 18 + 2, 3 * 18 + 2)  # a header row and column around 2 x 3 cells
    m = gancli.load(style_dir, device="cpu")
    images, width = m.style_mix([1, 2], [3, 4, 5], "coarse")
    grid = images.view(3, 4, 1, 16, 16)
    assert width == 4 and torch.equal(grid[0, 1:], m.sample(seeds=[3, 4, 5]))  # column sources along the top
    assert torch.equal(grid[1:, 0], m.sample(seeds=[1, 2]))                     # row sources down the side
    everything, _ = m.style_mix([1, 2], [3, 4, 5], "coarse,middle,fine")
    assert torch.allclose(everything.view(3, 4, 1, 16, 16)[1:, 1:], grid[1:, :1].expand(-1, 3, -1, -1, -1),
                          atol=1e-5)                                            # all styles from the row: the row
    cell, col = grid[1, 1], grid[0, 1]
    assert not torch.allclose(cell, col) and not torch.allclose(cell, grid[1, 0])  # coarse alone: a mixture
    levels = m.mixing_levels()
    assert sorted(sum(levels.values(), [])) == list(range(m.generator.num_ws)) and all(levels.values())


def test_mix_errors(style_dir, tiny_model_dir, tmp_path):
    r = run("mix", style_dir, "--levels", "coarsest", "-o", tmp_path / "m.png")
    assert r.exit_code == 2 and "unknown style level 'coarsest'" in r.output and "coarse" in r.output
    r = run("mix", tiny_model_dir, "-o", tmp_path / "m.png")
    assert r.exit_code == 2 and "style mixing is for stylegan models" in r.output


def test_truncation_and_levels_are_checked(style_dir, tmp_path):
    r = run("sample", style_dir, "--truncation", "nan", "-o", tmp_path / "x.png")
    assert r.exit_code == 2 and "psi runs from 0" in r.output
    r = run("mix", style_dir, "--levels", ",", "-o", tmp_path / "m.png")
    assert r.exit_code == 2 and "selects no styles" in r.output
    r = run("interpolate", style_dir, "--space", "w", "--method", "slerp", "-o", tmp_path / "w.gif")
    assert r.exit_code == 2 and "straight lines" in r.output


def test_interpolate_in_w(style_dir, tiny_model_dir, tmp_path):
    r = run("interpolate", style_dir, "--space", "w", "--seeds", "1,2,3", "--steps", 4, "-o", tmp_path / "w.png")
    assert r.exit_code == 0 and "in w" in r.output
    with Image.open(tmp_path / "w.png") as im:
        assert im.size == (4 * 18 + 2, 3 * 18 + 2)
    m = gancli.load(style_dir, device="cpu")
    w = m.map(m.latents_for(seeds=[1, 2]))
    walk = m.synthesize(torch.stack([w[0], 0.5 * (w[0] + w[1])]))
    assert torch.allclose(walk[0], m.sample(seeds=[1])[0], atol=1e-6)
    r = run("interpolate", tiny_model_dir, "--space", "w", "-o", tmp_path / "x.gif")
    assert r.exit_code == 2 and "w space is for stylegan models" in r.output


# ------------------------------------------------------------------------------------------------ the VAE
def _digit_file(path, index):
    from gancli.datasets import load_idx_split

    image = load_idx_split(SHARED / "mnist", "test").images[index, 0].numpy()
    Image.fromarray(image).save(path)
    return path


@needs_mnist
def test_vae_walks_between_two_real_images(vae_dir, tmp_path):
    a, b = _digit_file(tmp_path / "a.png", 0), _digit_file(tmp_path / "b.png", 1)
    r = run("interpolate", vae_dir, "--between", a, b, "--steps", 5, "-o", tmp_path / "between.png")
    assert r.exit_code == 0, r.output
    assert "between 2 images" in r.output
    with Image.open(tmp_path / "between.png") as im:
        assert im.size == (5 * 30 + 2, 2 * 30 + 2)  # 5 frames a -> b, then b itself: no loop back
    m = gancli.load(vae_dir, device="cpu")
    x = torch.from_numpy(np.asarray(Image.open(a), dtype=np.float32) / 127.5 - 1)[None, None]
    z = m.encode(x)
    assert z.shape == (1, 4)
    first = torch.cat(list(m.generate(z)))
    frame = torch.from_numpy(np.asarray(Image.open(tmp_path / "between.png"), dtype=np.float32))[2:30, 2:30]
    assert (frame - (first[0, 0] + 1) * 127.5).abs().max() <= 1  # frame 0 decodes the first image's encoding


@needs_mnist
def test_between_errors(vae_dir, tiny_model_dir, tmp_path):
    a = _digit_file(tmp_path / "a.png", 0)
    r = run("interpolate", vae_dir, "--between", a, "-o", tmp_path / "x.gif")
    assert r.exit_code == 2 and "two images or more" in r.output
    r = run("interpolate", vae_dir, a, a, "-o", tmp_path / "x.gif")
    assert r.exit_code == 2 and "--between" in r.output
    r = run("interpolate", tiny_model_dir, "--between", a, a, "-o", tmp_path / "x.gif")
    assert r.exit_code == 2 and "encoding images is for vae models" in r.output
    (tmp_path / "bad.png").write_text("not an image")
    r = run("interpolate", vae_dir, "--between", a, tmp_path / "bad.png", "-o", tmp_path / "x.gif")
    assert r.exit_code == 2 and "bad.png" in r.output


def test_vae_samples_like_any_model(vae_dir, tmp_path):
    r = run("sample", vae_dir, "-n", 4, "-o", tmp_path / "v.png")
    assert r.exit_code == 0
    m = gancli.load(vae_dir, device="cpu")
    x = m.sample(3, seed=5)
    assert x.shape == (3, 1, 28, 28) and torch.equal(x, m.sample(3, seed=5)) and -1 <= x.min() and x.max() <= 1


# ------------------------------------------------------------------------------------------------ gan eval
@needs_mnist
def test_eval_reports_the_vae_test_elbo(vae_dir, shared_references):
    from gancli.evaluate import evaluate

    r = evaluate(str(vae_dir), "mnist", n=200, device="cpu")
    assert r["elbo_images"] == 10000 and r["elbo"] < 0
    assert r["elbo"] == pytest.approx(-(r["reconstruction_nats"] + r["kl_nats"]), abs=0.01)
    assert 0 < r["reconstruction_nats"] < 784 * 5 and r["fid"] > 0


@needs_fashion
def test_eval_truncation_sweep(style_dir, tmp_path):
    out = tmp_path / "sweep.json"
    r = run("eval", style_dir, "--real", "fashion", "-n", 200, "--truncation", "1.0,0.5", "--json", out,
            "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert "truncation trade-off" in r.output
    rows = json.loads(out.read_text())["by_truncation"]
    assert [x["truncation"] for x in rows] == [1.0, 0.5]
    assert rows[1]["diversity"] < rows[0]["diversity"]
    r = run("eval", "dcgan-mnist", "-n", 200, "--truncation", "0.7")
    assert r.exit_code == 2 and "--truncation is for stylegan" in r.output
    r = run("eval", style_dir, "-n", 200, "--real", "fashion", "--truncation", "x")
    assert r.exit_code == 2 and "numbers separated by commas" in r.output


def test_the_recorded_command_is_the_one_typed(image_folder, tmp_path):
    r = run("train", image_folder, "--out", tmp_path / "c", "--steps", 1, "--no-mirror", "--ema", "--device", "cpu",
            *VAE_TRAIN)
    assert r.exit_code == 0, r.output
    options = json.loads((tmp_path / "c" / "options.json").read_text())
    assert options["mirror"] is False and options["ema"] is True and options["arch"] == "vae"
    assert "--no-mirror" in options["command"] and "--ema" in options["command"]
    assert options["command"].startswith("gan train ")


# ------------------------------------------------------------------------------------------------ BEGAN
def test_began_controller_keeps_k_in_the_unit_interval():
    from gancli.families.began import control

    assert control(0.0, 0.5, 0.001, 1.0, 0.2) == pytest.approx((0.0003, 1.3))  # fakes too easy: k rises
    assert control(0.0, 0.5, 0.001, 0.2, 1.0)[0] == 0.0                         # never below 0
    assert control(0.9995, 0.5, 0.1, 10.0, 0.0)[0] == 1.0                       # never above 1
    k, m = control(0.3, 0.5, 0.001, 0.4, 0.2)                                    # at the equilibrium
    assert k == 0.3 and m == pytest.approx(0.4)


def test_began_trains_with_k_and_m_global_logged(image_folder, tmp_path):
    from gancli.families.began import AutoencoderDiscriminator

    r = run("train", image_folder, "--out", tmp_path / "b", "--steps", 8, "--device", "cpu", "--log-every", 1,
            *BEGAN_TRAIN)
    assert r.exit_code == 0, r.output
    rows = [json.loads(l) for l in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert all(0 <= row["k"] <= 1 and row["m_global"] > 0 for row in rows) and rows[0]["k"] == 0
    assert any(row["k"] > 0 for row in rows)
    assert gancli.load(tmp_path / "b", device="cpu").sample(3).shape == (3, 1, 28, 28)
    d = AutoencoderDiscriminator(4, 28, 1, 4)
    x = torch.rand(2, 1, 28, 28) * 2 - 1
    assert torch.allclose(d(x), (x - d.reconstruct(x)).abs().mean((1, 2, 3)))  # D's output: its L1 error


# ------------------------------------------------------------------------------------------------ DesignGAN
def test_creativity_loss_is_least_and_class_entropy_most_for_a_uniform_class_distribution():
    import math

    from gancli.families.design import class_entropy, creativity_loss

    uniform = torch.zeros(1, 10)
    assert float(creativity_loss(uniform)) == pytest.approx(math.log(10))
    assert float(class_entropy(uniform)) == pytest.approx(math.log(10))
    for logits in (torch.randn(64, 10) * 3, torch.eye(10) * 8):
        assert (creativity_loss(logits) > math.log(10)).item()
        assert (class_entropy(logits) < math.log(10)).all()


def test_design_trains_an_unconditional_generator_on_labelled_data(image_folder, tmp_path):
    r = run("train", image_folder, "--arch", "design", "--out", tmp_path / "d", "--steps", 4, "--device", "cpu",
            "--log-every", 2, "--batch-size", 8, "--g-width", 4, "--d-width", 4, "--latent-dim", 8,
            "--creativity", "0.5")
    assert r.exit_code == 0, r.output
    row = json.loads((tmp_path / "d" / "metrics.jsonl").read_text().splitlines()[-1])
    assert 0 <= row["class_acc_real"] <= 1 and 0 <= row["class_entropy_fake"] <= math.log(2) + 1e-6
    m = gancli.load(tmp_path / "d", device="cpu")
    assert not m.is_conditional and m.sample(2).shape == (2, 1, 28, 28)


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


# ------------------------------------------------------------------------------------------------ SSGAN
def test_labelled_subset_is_a_fixed_seeded_choice():
    from gancli.families.ssgan import labelled_subset

    labels = torch.arange(100) % 10
    a, b, c = labelled_subset(labels, 3, 0), labelled_subset(labels, 3, 0), labelled_subset(labels, 3, 1)
    assert torch.equal(a, b) and not torch.equal(a, c) and len(a) == 30
    assert torch.bincount(labels[a]).tolist() == [3] * 10
    with pytest.raises(ValueError, match="fewer images"):
        labelled_subset(labels, 11, 0)


def test_salimans_discriminator_is_noisy_only_while_training(tmp_path):
    from gancli.families.ssgan import NoisyMLPClassifier

    torch.manual_seed(0)
    d, x = NoisyMLPClassifier(28, 1, 10), torch.rand(5, 1, 28, 28) * 2 - 1
    logits, features = d(x, features=True)
    assert logits.shape == (5, 10) and features.shape == (5, 250)
    assert not torch.equal(d(x), d(x))  # Gaussian noise on the pixels and every hidden layer
    d.eval()
    assert torch.equal(d(x), d(x))
    cfg = {"architecture": "ssgan", "arch_args": {"ssgan_classes": 10, "latent_dim": 8, "ssgan_net": "mlp"},
           "latent_dim": 8, "image_size": 28, "channels": 1, "name": "s", "classifier_classes": list("0123456789")}
    model = GANModel.from_config(cfg)
    folder = model.save_pretrained(tmp_path / "s", card=CARD)  # weight-normalised layers survive the round trip
    again = gancli.load(folder, device="cpu")
    assert torch.equal(again.classify(x), model.classify(x))


@needs_mnist
def test_ssgan_classifies_files_and_folders(image_folder, tmp_path):
    r = run("train", image_folder, "--out", tmp_path / "s", "--steps", 3, "--device", "cpu", "--log-every", 1,
            *SSGAN_TRAIN)
    assert r.exit_code == 0, r.output
    config = json.loads((tmp_path / "s" / "export" / "config.json").read_text())
    assert config["classifier_classes"] == ["a", "b"] and len(config["training"]["labelled_indices"]) == 6
    row = json.loads((tmp_path / "s" / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"loss_sup", "loss_unsup", "acc_labelled", "loss_g"} <= set(row)
    digits = tmp_path / "digits"
    digits.mkdir()
    for i in range(3):
        _digit_file(digits / f"{i}.png", i)
    (digits / "broken.png").write_text("not an image")
    r = run("classify", tmp_path / "s", digits, image_folder / "a" / "000.png", "--csv", tmp_path / "new" / "c.csv",
            "--json", tmp_path / "c.json")
    assert r.exit_code == 0, r.output
    assert "skipped" in r.output and "broken.png" in r.output
    lines = (tmp_path / "new" / "c.csv").read_text().splitlines()  # its folder made, as for every output
    assert lines[0] == "file,class,probability" and len(lines) == 5
    rows = json.loads((tmp_path / "c.json").read_text())
    assert all(r["class"] in ("a", "b") and abs(sum(r["probabilities"].values()) - 1) < 1e-3 for r in rows)
    r = run("classify", "dcgan-mnist", digits)
    assert r.exit_code == 2 and "classifying images is for ssgan models" in r.output
    r = run("classify", tmp_path / "s", tmp_path / "nothing-here")
    assert r.exit_code == 2 and "does not exist" in r.output


def test_ssgan_baseline_trains_the_classifier_alone(image_folder, tmp_path):
    r = run("train", image_folder, "--out", tmp_path / "b", "--steps", 3, "--device", "cpu", "--log-every", 1,
            "--no-adversarial", *SSGAN_TRAIN)
    assert r.exit_code == 0, r.output
    row = json.loads((tmp_path / "b" / "metrics.jsonl").read_text().splitlines()[-1])
    assert "loss_unsup" not in row and "loss_sup" in row


@needs_mnist
def test_eval_reports_ssgan_test_accuracy(tmp_path, shared_references):
    from gancli.evaluate import evaluate

    torch.manual_seed(0)
    cfg = {"architecture": "ssgan", "arch_args": {"ssgan_classes": 10, "latent_dim": 8, "image_size": 28,
                                                  "channels": 1, "g_width": 4, "d_width": 4},
           "latent_dim": 8, "image_size": 28, "channels": 1, "name": "s", "dataset": "mnist",
           "classifier_classes": [str(i) for i in range(10)]}
    folder = GANModel.from_config(cfg).save_pretrained(tmp_path / "s", card=CARD)
    r = evaluate(str(folder), "mnist", n=200, device="cpu")
    assert r["test_images"] == 10000 and 0 <= r["test_accuracy"] <= 1
    assert r["test_error"] == pytest.approx(1 - r["test_accuracy"], abs=1e-4)


@needs_fashion
def test_discogan_eval_between_fashion_classes(tmp_path):
    """The bags <-> shoes measures on Fashion-MNIST's test classes, checked with an identity "translator"."""
    from gancli.classifiers import load_judge
    from gancli.evaluate import evaluate, evaluate_class_translation

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


@needs_mnist
def test_eval_novelty_tells_copies_from_new_images(tiny_model_dir, tmp_path, shared_references):
    """A "generator" that returns training digits is a copier: distance 0 to the training set. Real test digits are
    new, at a distance like a good generator's."""
    from gancli.classifiers import load_judge
    from gancli.datasets import DATASETS, find, load_idx_split
    from gancli.evaluate import build_reference, novelty

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
