"""BEGAN: the equilibrium controller and its training."""
import json

import pytest
import torch
from tiny_families import BEGAN_TRAIN, run

import gancli


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




def test_began_halves_its_learning_rates_when_m_global_stalls_and_resumes_the_watch(image_folder, tmp_path):
    """--lr-stall N (the paper's decay): whenever M_global's mean over N steps is no lower than the best window's,
    both rates halve. A run interrupted between windows and resumed makes the same decisions as one that was not."""
    common = ["--device", "cpu", "--log-every", 1, "--lr-stall", 2, "--checkpoint-every", 5, *BEGAN_TRAIN]
    r = run("train", image_folder, "--out", tmp_path / "a", "--steps", 12, *common)
    assert r.exit_code == 0, r.output
    rows = [json.loads(l) for l in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    first = rows[0]["lr_g"]
    factors = [row["lr_g"] / first for row in rows]
    assert all(f in (1, 0.5, 0.25, 0.125, 0.0625, 0.03125) for f in factors) and factors == sorted(factors, reverse=True)
    halvings = (tmp_path / "a" / "log.txt").read_text().count("M_global stalled")
    assert halvings >= 1
    assert factors[-1] == 0.5 ** halvings or factors[-1] == 0.5 ** (halvings - 1)  # the last may act after the last row

    r = run("train", image_folder, "--out", tmp_path / "b", "--steps", 5, *common)
    assert r.exit_code == 0, r.output
    r = run("train", image_folder, "--out", tmp_path / "b", "--steps", 12, "--resume", *common)
    assert r.exit_code == 0, r.output
    resumed = [json.loads(l) for l in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [row["lr_g"] for row in resumed[-7:]] == [row["lr_g"] for row in rows[-7:]]


def test_began_cs_constraint_trains_d_and_is_refused_without_a_matching_bottleneck(image_folder, tmp_path):
    """--constraint W (BEGAN-CS): the code error |z - E(G(z))| is logged and trains D, not G (which feels it only
    through what D then reconstructs); a bottleneck that cannot hold z is refused in one line."""
    from gancli.training.trainer import Trainer, TrainOptions

    base = dict(data=str(image_folder), arch="began", device="cpu", log_every=1, g_width=4, d_width=4, latent_dim=8,
                bottleneck=8, batch_size=8, steps=1, sample_every=100)
    rows = []
    for frozen, trained, changed in (("lr_d", "generator", False), ("lr_g", "discriminator", True)):
        # one step from the same start, the other network held still (a rate too small to move a float32 weight):
        # the network left to train differs only by the code term, if that term trains it
        plain, cs = (Trainer(TrainOptions(out=str(tmp_path / f"{name}-{frozen}"), **base, **{frozen: 1e-30}, **extra))
                     for name, extra in (("plain", {}), ("cs", {"constraint": 1.0})))
        plain.run(), cs.run()
        a, b = plain.nets[trained].state_dict(), cs.nets[trained].state_dict()
        assert any(not torch.equal(a[k], b[k]) for k in a) == changed, trained
        rows += [json.loads(l) for l in (tmp_path / f"cs-{frozen}" / "metrics.jsonl").read_text().splitlines()]
        assert "code_error" not in (tmp_path / f"plain-{frozen}" / "metrics.jsonl").read_text()
    assert len(rows) == 2 and all(0.2 < row["code_error"] < 3 for row in rows)  # z ~ N(0, 1): about 0.8 at first
    common = ["--arch", "began", "--device", "cpu", "--latent-dim", 8]

    r = run("train", image_folder, "--out", tmp_path / "d", "--steps", 2, "--constraint", 1.0, *common)
    assert r.exit_code == 2 and r.output.startswith("error: --constraint needs --bottleneck (64) equal to "
                                                    "--latent-dim (8)"), r.output
    assert not (tmp_path / "d").exists()
