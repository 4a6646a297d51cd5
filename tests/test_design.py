"""DesignGAN: the creativity term and its training."""
import json
import math

import pytest
import torch
from tiny_families import run

import gancli


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


