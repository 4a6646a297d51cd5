"""--lr-decay: the noise-to-image families' learning rates, constant for the first half, then linear to 0."""
import json

import pytest

from tiny_families import run


def test_lr_decay_holds_then_falls_linearly_to_zero_and_resumes_alike(image_folder, tmp_path):
    common = ["--device", "cpu", "--log-every", 1, "--g-width", 4, "--d-width", 4, "--latent-dim", 8,
              "--batch-size", 8, "--lr-decay", "--checkpoint-every", 3]
    r = run("train", image_folder, "--out", tmp_path / "a", "--steps", 10, *common)
    assert r.exit_code == 0, r.output
    rates = [json.loads(l)["lr_g"] for l in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert len(rates) == 10 and rates[:6] == [2e-4] * 6  # steps 0-5 at the full rate
    assert rates[6:] == pytest.approx([1.6e-4, 1.2e-4, 0.8e-4, 0.4e-4])  # then 1/5 less each step, 0 after the last

    r = run("train", image_folder, "--out", tmp_path / "b", "--steps", 4, *common)
    assert r.exit_code == 0, r.output
    r = run("train", image_folder, "--out", tmp_path / "b", "--steps", 10, "--resume", "--device", "cpu")
    assert r.exit_code == 0, r.output
    resumed = [json.loads(l)["lr_g"] for l in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert resumed[-6:] == rates[-6:]

    r = run("train", image_folder, "--out", tmp_path / "c", "--steps", 4, *common[:-3])
    assert r.exit_code == 0, r.output
    plain = [json.loads(l)["lr_g"] for l in (tmp_path / "c" / "metrics.jsonl").read_text().splitlines()]
    assert plain == [2e-4] * 4
