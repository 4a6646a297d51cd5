"""`gan toy`: the theory's numbers hold on toy data (V -> -log 4, D -> D*), the 2-D mode measure is right on
hand-made samples, and the command writes its pictures and JSON, or one error line."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from gancli.cli import app
from gancli.use import toy

ROOT = Path(__file__).resolve().parents[1]
RING = toy.DATA_2D["ring"][0]


def gan(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="100", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "gancli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


def one_error_line(p, message: str):
    assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
    assert p.stderr.startswith("error: ") and p.stderr.strip().count("\n") == 0, p.stderr[-2000:]
    assert message in p.stderr and "Traceback" not in p.stderr, p.stderr


# ------------------------------------------------------------------------------------------------ 1-D theory
def test_1d_training_ends_at_the_global_optimum():
    """The default run (seed 0): V within 0.01 of -log 4, p_g near p_data (JSD), D near D* where the data is."""
    result = toy.train_1d(seed=0, frames=2)
    end, start = result.final, result.history[0]
    assert abs(end["value"] + math.log(4)) < 0.01, end
    assert end["jsd"] < 0.01 and start["jsd"] > 0.5, (start, end)
    assert end["max_d_error"] < 0.1, end
    assert abs(end["optimal_d_value"] - (-math.log(4) + 2 * end["jsd"])) < 1e-5  # V(D*, G) = -log 4 + 2 JSD


def test_d_trained_against_a_fixed_g_is_the_optimal_discriminator():
    result = toy.train_1d(fixed_g=True, steps=800, frames=1)
    end = result.final
    assert result.history[0]["max_d_error"] > 0.3  # an untrained D is far from D*: the check can fail
    assert end["max_d_error"] < 0.03, end
    assert abs(end["value"] - end["optimal_d_value"]) < 0.02, end  # D* maximises V: the trained D reaches it


def test_theory_on_known_densities():
    """p_g = p_data: D* = 1/2, JSD = 0, V(1/2) = -log 4; disjoint densities: JSD = log 2."""
    grid = torch.linspace(-4, 4, 801, dtype=torch.float64)
    p = toy.density_1d("gauss", grid)
    same = toy.theory_1d(p, p, torch.full_like(grid, 0.5), grid)
    assert abs(same["value"] + math.log(4)) < 1e-4 and abs(same["jsd"]) < 1e-9
    assert float((same["d_star"] - 0.5).abs().max()) < 1e-9
    far = torch.exp(-0.5 * ((grid + 2.5) / 0.3) ** 2) / (0.3 * math.sqrt(2 * math.pi))
    apart = toy.theory_1d(toy.density_1d("gauss", grid), far, torch.full_like(grid, 0.5), grid)
    assert abs(apart["jsd"] - math.log(2)) < 1e-3


def test_kde_recovers_a_known_density():
    grid = torch.linspace(-4, 4, 801)
    x = 1.5 + 0.5 * torch.randn(100_000, generator=torch.Generator().manual_seed(0))
    est, true = toy.kde(x, grid), toy.density_1d("gauss", grid)
    assert float((est - true).abs().max()) < 0.03 * float(true.max())
    assert abs(float(torch.trapezoid(est, grid)) - 1) < 1e-3


# ------------------------------------------------------------------------------------------------ 2-D measure
def test_mode_stats_on_hand_made_samples():
    exact = toy.mode_stats(torch.tensor(RING), RING, 0.05)
    assert exact["modes_covered"] == 8 and exact["high_quality"] == 1.0
    one = toy.mode_stats(torch.tensor([RING[3]] * 100), RING, 0.05)
    assert one["modes_covered"] == 1 and one["high_quality"] == 1.0 and one["per_mode"][3] == 100
    # half the samples at the centre, far from every mode: low quality; one stray at a mode covers nothing
    mixed = torch.cat([torch.tensor([RING[0]] * 50), torch.zeros(49, 2), torch.tensor([RING[1]])])
    m = toy.mode_stats(mixed, RING, 0.05)
    assert m["modes_covered"] == 1 and m["high_quality"] == 0.51
    # 3 std is the line: 0.14 from a mode (std 0.05) is high quality, 0.16 is not
    near = toy.mode_stats(torch.tensor([[2.14, 0.0], [2.16, 0.0]]), RING, 0.05)
    assert near["high_quality"] == 0.5


def test_2d_plain_training_collapses_and_packing_cures_it():
    """The default networks at batch 128 (a quarter of the default's cost; docs/theory.md has the batch-512 runs):
    plain training ends on at most one mode of the ring, PacGAN with pairs covers all eight."""
    plain = toy.train_2d(batch=128, frames=1)
    packed = toy.train_2d(batch=128, frames=1, pack=2)
    assert plain.final["modes_covered"] <= 1 and plain.final["high_quality"] < 0.1, plain.final
    assert packed.final["modes_covered"] == 8 and packed.final["high_quality"] > 0.2, packed.final
    assert [h["step"] for h in packed.history] == [0, 3000]


def test_unrolled_logits_are_d_after_k_sgd_steps():
    """K = 0 is D itself; K steps equal K plain SGD steps of D's loss on a copy of D (the same real batches), and G's
    gradient flows through them back to the fakes."""
    import copy

    from gancli.families.losses import d_loss

    torch.manual_seed(0)
    D = toy._mlp([2, 16, 1], act="relu")
    fake = torch.randn(64, 2, requires_grad=True)
    assert torch.equal(toy._unrolled_logits(D, "ns", fake, RING, 0.05, 0, 0.1, torch.Generator()), D(fake))
    ahead = toy._unrolled_logits(D, "ns", fake, RING, 0.05, 5, 0.1, torch.Generator().manual_seed(3))
    twin, gen = copy.deepcopy(D), torch.Generator().manual_seed(3)
    opt = torch.optim.SGD(twin.parameters(), lr=0.1)
    for _ in range(5):
        opt.zero_grad()
        d_loss("ns", twin(toy._sample_mixture(RING, 0.05, 64, gen)), twin(fake.detach())).backward()
        opt.step()
    assert torch.allclose(ahead, twin(fake), atol=1e-5) and not torch.allclose(ahead, D(fake), atol=1e-3)
    ahead.mean().backward()
    assert fake.grad is not None and float(fake.grad.abs().sum()) > 0


# ------------------------------------------------------------------------------------------------ the command
def test_cli_writes_the_animation_and_json(tmp_path):
    p = gan("toy", "1d", "--steps", 60, "--frames", 4, "-o", "toy.gif", "--json", "toy.json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "V(D, G)" in p.stdout and "JSD" in p.stdout
    gif = Image.open(tmp_path / "toy.gif")
    assert gif.n_frames == 5
    numbers = json.loads((tmp_path / "toy.json").read_text())
    assert numbers["kind"] == "1d" and numbers["final"]["step"] == 60 and len(numbers["history"]) == 5
    assert abs(numbers["optimal_value"] + math.log(4)) < 1e-12


def test_cli_2d_png_and_json_on_stdout(tmp_path):
    p = gan("toy", "2d", "--steps", 20, "--frames", 3, "--pack", 2, "-o", "ring.png", "--json", "-", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    numbers = json.loads(p.stdout)
    assert numbers["pack"] == 2 and numbers["final"]["num_modes"] == 8
    strip = Image.open(tmp_path / "ring.png")
    assert strip.width > 3 * strip.height  # four moments side by side
    assert len(set(strip.convert("L").tobytes())) > 10  # drawn, not blank


@pytest.mark.parametrize("args, message", [
    (("1d", "--loss", "wgan"), "unknown --loss 'wgan'"),
    (("1d", "--data", "ring"), "unknown --data 'ring' for 1d"),
    (("2d", "--pack", "2", "--unrolled", "5"), "give --pack or --unrolled, not both"),
    (("2d", "--steps", "0"), "--steps must be between"),
    (("1d", "-o", "toy.bmpx"), "-o toy.bmpx: .bmpx is not a format this command writes: end it in .gif, .webp, .png "
                               "or .jpg"),
    (("1d", "-o", "toy"), "-o toy has no extension: end it in .gif, .webp, .png or .jpg"),
])
def test_bad_options_are_one_error_line(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, ["toy", *args])
    assert r.exit_code == 2 and r.output.startswith("error: ") and message in r.output, r.output
    assert r.output.strip().count("\n") == 0 and not any(tmp_path.iterdir())  # one line, nothing written


def test_bad_option_through_the_real_entry_point(tmp_path):
    one_error_line(gan("toy", "2d", "--unrolled", "99", cwd=tmp_path), "--unrolled must be between 0 and 20")
    one_error_line(gan("toy", "1d", "--bogus", cwd=tmp_path), "No such option")
    assert not any(tmp_path.iterdir())


def test_without_o_or_json_the_picture_is_written_anyway_and_says_where(tmp_path):
    p = gan("toy", "1d", "--steps", 20, "--frames", 2, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "wrote toy-1d.gif (animation, 3 frames)" in p.stderr + p.stdout
    with Image.open(tmp_path / "toy-1d.gif") as gif:
        assert gif.size == (7 * 80 * 2, round(3.8 * 80 * 2))  # --scale 2: 7 x 3.8 inches at 160 dpi
    p = gan("toy", "1d", "--steps", 20, "--frames", 2, "--scale", 1, "-o", "small.png", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    with Image.open(tmp_path / "small.png") as strip:
        assert strip.height == round(3.8 * 80)
