"""dcgan --spectral-norm: D's weights are divided by their largest singular value (Miyato et al. 2018)."""
import json

import torch
from safetensors.torch import load_file
from tiny_families import interrupt_at, run

from gancli.training.trainer import Trainer, TrainOptions

TINY = dict(device="cpu", g_width=4, d_width=4, latent_dim=8, batch_size=8, checkpoint_every=1)


def _largest_singular_values(discriminator) -> list[float]:
    weights = [m.weight for m in discriminator.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    return [torch.linalg.matrix_norm(w.detach().flatten(1), ord=2).item() for w in weights]


def test_spectral_norm_holds_every_d_weight_near_one_and_the_run_resumes_exactly(image_folder, tmp_path):
    options = dict(data=str(image_folder), out=str(tmp_path / "a"), steps=8, spectral_norm=True, **TINY)
    trainer = Trainer(TrainOptions(**options))
    trainer.run()
    config = json.loads((tmp_path / "a" / "export" / "config.json").read_text())
    assert config["arch_args"]["d_norm"] == "spectral"
    d = trainer.nets["discriminator"]
    assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.GroupNorm)) for m in d.modules())
    with torch.no_grad():  # a forward pass in training mode takes the power iteration one step further
        sigmas = _largest_singular_values(d.eval())
    assert len(sigmas) == 3 and all(0.8 < s < 1.05 for s in sigmas), sigmas
    raw = [m.parametrizations.weight.original for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    # DCGAN's N(0, 0.02) start leaves the stored weights far below 1: the normalisation is what lifts them
    assert max(torch.linalg.matrix_norm(w.detach().flatten(1), ord=2).item() for w in raw) < 0.7

    plain = Trainer(TrainOptions(**{**options, "out": str(tmp_path / "plain"), "spectral_norm": False, "steps": 1}))
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.nets["discriminator"].modules())

    interrupt_at(Trainer(TrainOptions(**{**options, "out": str(tmp_path / "b")})), 5)
    resumed = Trainer(TrainOptions(**{**options, "out": str(tmp_path / "b"), "resume": True}))
    resumed.run()
    a, b = (load_file(tmp_path / n / "export" / "model.safetensors") for n in ("a", "b"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_spectral_norm_trains_from_the_command_line_in_every_family_on_dcgans_d(image_folder, tmp_path):
    for name, extra in (("rpgan", ["--loss", "rpgan"]), ("acgan", ["--arch", "acgan"]), ("design", ["--arch", "design"])):
        r = run("train", image_folder, "--out", tmp_path / name, "--steps", 2, "--device", "cpu", "--g-width", 4,
                "--d-width", 4, "--latent-dim", 8, "--batch-size", 8, "--spectral-norm", *extra)
        assert r.exit_code == 0, r.output
        config = json.loads((tmp_path / name / "export" / "config.json").read_text())
        assert config["arch_args"]["d_norm"] == "spectral", name
    r = run("train", image_folder, "--out", tmp_path / "c", "--arch", "cyclegan", "--spectral-norm", "--steps", 1)
    assert r.exit_code == 2 and r.output.startswith("error:"), r.output
