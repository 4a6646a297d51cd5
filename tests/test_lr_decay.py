"""--lr-decay: the noise-to-image families' learning rates, constant for the first half, then linear to 0."""
import json

import pytest
import torch
from safetensors.torch import load_file
from tiny_families import interrupt_at, run

from gancli.training.trainer import Trainer, TrainOptions


def test_lr_decay_holds_then_falls_linearly_to_zero_and_an_interrupted_run_resumes_exactly(image_folder, tmp_path):
    common = ["--device", "cpu", "--log-every", 1, "--g-width", 4, "--d-width", 4, "--latent-dim", 8,
              "--batch-size", 8, "--lr-decay"]
    r = run("train", image_folder, "--out", tmp_path / "a", "--steps", 10, *common)
    assert r.exit_code == 0, r.output
    rates = [json.loads(l)["lr_g"] for l in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert len(rates) == 10 and rates[:6] == [2e-4] * 6  # steps 0-5 at the full rate
    assert rates[6:] == pytest.approx([1.6e-4, 1.2e-4, 0.8e-4, 0.4e-4])  # then 1/5 less each step, 0 after the last

    options = dict(data=str(image_folder), out=str(tmp_path / "b"), steps=10, device="cpu", log_every=1, g_width=4,
                   d_width=4, latent_dim=8, batch_size=8, lr_decay=True, checkpoint_every=1)
    interrupt_at(Trainer(TrainOptions(**options)), 7)  # in the decaying half
    resumed = Trainer(TrainOptions(**options, resume=True))
    assert 6 <= resumed.step <= 8
    resumed.run()
    a, b = (load_file(tmp_path / n / "export" / "model.safetensors") for n in ("a", "b"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [json.loads(l)["lr_g"] for l in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()][-3:] == \
        rates[-3:]

    r = run("train", image_folder, "--out", tmp_path / "c", "--steps", 4, *common[:-1])
    assert r.exit_code == 0, r.output
    plain = [json.loads(l)["lr_g"] for l in (tmp_path / "c" / "metrics.jsonl").read_text().splitlines()]
    assert plain == [2e-4] * 4


def test_a_run_made_before_lr_decay_existed_resumes_as_it_was_and_refuses_the_new_option(image_folder, tmp_path):
    common = ["--device", "cpu", "--g-width", 4, "--d-width", 4, "--latent-dim", 8, "--batch-size", 8]
    r = run("train", image_folder, "--out", tmp_path / "old", "--steps", 2, *common)
    assert r.exit_code == 0, r.output
    saved = json.loads((tmp_path / "old" / "options.json").read_text())
    del saved["lr_decay"]  # as an earlier version wrote it
    (tmp_path / "old" / "options.json").write_text(json.dumps(saved))

    r = run("train", image_folder, "--out", tmp_path / "old", "--steps", 4, "--resume", "--lr-decay", "--device", "cpu")
    assert r.exit_code == 2 and r.output.startswith("error: --resume: this run was made before --lr-decay existed"), \
        r.output
    r = run("train", image_folder, "--out", tmp_path / "old", "--steps", 4, "--resume", "--device", "cpu")
    assert r.exit_code == 0, r.output
    rates = [json.loads(l)["lr_g"] for l in (tmp_path / "old" / "metrics.jsonl").read_text().splitlines()]
    assert rates and set(rates) == {2e-4}


def test_discogan_takes_lr_decay(image_folder, tmp_path):
    """DiscoGAN's learning rates hold for the first half and fall to 0 with --lr-decay, both players'."""
    from tiny_families import DISCO_TRAIN

    r = run("train", image_folder, "--out", tmp_path / "d", "--steps", 6, "--device", "cpu", "--log-every", 1,
            *DISCO_TRAIN, "--lr-decay")
    assert r.exit_code == 0, r.output
    rows = [json.loads(l) for l in (tmp_path / "d" / "metrics.jsonl").read_text().splitlines()]
    assert [row["lr_g"] for row in rows][:4] == [2e-4] * 4  # steps 0-3, then a third less each step
    assert [row["lr_g"] for row in rows][4:] == pytest.approx([2e-4 * 2 / 3, 2e-4 / 3])
    assert [row["lr_d"] for row in rows] == [row["lr_g"] for row in rows]
