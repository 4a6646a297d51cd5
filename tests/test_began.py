"""BEGAN: the equilibrium controller and its training."""
import json

import pytest
import torch

import gancli

from tiny_families import run, BEGAN_TRAIN


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


