"""StyleGAN: truncation, style mixing, w-space walks, and the truncation sweep of `gan eval`."""
import json

import numpy as np
import torch
from PIL import Image
from tiny_families import run, style_dir  # noqa: F401 (fixtures)

import gancli


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
    r = run("sample", style_dir, "-n", 4, "--truncation", "0", "-o", tmp_path / "t.png", "--scale", 1)
    assert r.exit_code == 0 and "truncation 0" in r.output
    with Image.open(tmp_path / "t.png") as im:
        a = np.asarray(im)
    cells = [a[2 + 18 * r:18 + 18 * r, 2 + 18 * c:18 + 18 * c] for r in range(2) for c in range(2)]
    assert all((cell == cells[0]).all() for cell in cells)


# ------------------------------------------------------------------------------------------------ style mixing
def test_mix_writes_the_papers_grid(style_dir, tmp_path):
    r = run("mix", style_dir, "--rows", "1,2", "--cols", "3,4,5", "--levels", "coarse", "-o", tmp_path / "mix.png",
            "--scale", 1)
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
    r = run("interpolate", style_dir, "--space", "w", "--seeds", "1,2,3", "--steps", 4, "-o", tmp_path / "w.png",
            "--scale", 1)
    assert r.exit_code == 0 and "in w" in r.output
    with Image.open(tmp_path / "w.png") as im:
        assert im.size == (4 * 18 + 2, 3 * 18 + 2)
    m = gancli.load(style_dir, device="cpu")
    w = m.map(m.latents_for(seeds=[1, 2]))
    walk = m.synthesize(torch.stack([w[0], 0.5 * (w[0] + w[1])]))
    assert torch.allclose(walk[0], m.sample(seeds=[1])[0], atol=1e-6)
    r = run("interpolate", tiny_model_dir, "--space", "w", "-o", tmp_path / "x.gif")
    assert r.exit_code == 2 and "w space is for stylegan models" in r.output


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

