"""The CUDA paths, run where a GPU is: `python bench/cuda_check.py` (or `pytest -m cuda`) on the GPU machine.

Elsewhere every test here skips, unless GAN_CUDA_TEST_DEVICE=cpu lets the CPU stand in for the GPU, so the tests
themselves are checked on a machine without one before the few minutes of GPU time are spent on them. What a user
would notice: the zoo's samplers draw the same pictures on the GPU as on the CPU; every family trains there; a run
killed with SIGKILL resumes to the same weights; bf16 and channels_last are what training uses there; translate and
upscale give the CPU's pictures.
"""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_image_folder, sigkill_after_checkpoint
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

import gancli
from gancli.cli import app
from gancli.data.imageio import to_uint8
from gancli.store.hub import zoo_dir

DEVICE = os.environ.get("GAN_CUDA_TEST_DEVICE", "cuda")
pytestmark = [pytest.mark.cuda, pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(),
                                                   reason="CUDA is not available")]
runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def exact_fp32():
    """cuDNN's convolutions default to TF32 (10-bit mantissas) on Ampere and later: compare fp32 with fp32."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def zoo_samplers() -> list[str]:
    names = []
    for folder in sorted(zoo_dir().iterdir()):
        config = json.loads((folder / "config.json").read_text()) if (folder / "config.json").is_file() else {}
        if config.get("latent_dim") and config.get("task") not in ("classifier", "translation", "super-resolution"):
            names.append(folder.name)
    return names


def close_pictures(ours: torch.Tensor, ref: torch.Tensor, atol: float, share: float, what: str):
    diff = float((ours.float().cpu() - ref.float().cpu()).abs().max())
    same = float((to_uint8(ours.float().cpu()) == to_uint8(ref.float().cpu())).mean())
    assert diff <= atol and same >= share, f"{what}: max |diff| {diff:.2e}, {100 * same:.3f}% of uint8 pixels equal"


def run(*args):
    r = runner.invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    return r


# ------------------------------------------------------------------------------------------------ sampling
@pytest.mark.parametrize("name", zoo_samplers())
def test_zoo_sampler_draws_the_cpus_pictures(name):
    cpu, dev = gancli.load(name, device="cpu"), gancli.load(name, device=DEVICE)
    text = cpu.family.default_texts(cpu.config) if cpu.takes_text else None
    a = cpu.sample(16, seed=3, text=text)
    b = dev.sample(16, seed=3, text=text)
    assert b.shape == a.shape
    close_pictures(b, a, 2e-3, 0.99, name)


def test_bf16_sampling_stays_near_fp32(tmp_path):
    fp32, bf16 = tmp_path / "fp32.png", tmp_path / "bf16.png"
    run("sample", "dcgan-mnist", "-n", 16, "--device", DEVICE, "-o", fp32)
    run("sample", "dcgan-mnist", "-n", 16, "--device", DEVICE, "--bf16", "-o", bf16)
    a, b = (np.asarray(Image.open(p), dtype=np.float32) for p in (fp32, bf16))
    assert a.shape == b.shape and np.abs(a - b).mean() < 4.0  # grey levels: bf16's 8-bit mantissa, not a new picture


# ------------------------------------------------------------------------------------------------ training
FAMILIES = {
    "dcgan": ["--arch", "dcgan", "--g-width", "4", "--d-width", "4", "--latent-dim", "8", "--batch-size", "8"],
    "cgan": ["--arch", "dcgan", "--conditional", "--g-width", "4", "--d-width", "4", "--latent-dim", "8",
             "--batch-size", "8"],
    "mlp": ["--arch", "mlp", "--latent-dim", "8", "--batch-size", "8"],
    "acgan": ["--arch", "acgan", "--g-width", "4", "--d-width", "4", "--latent-dim", "8", "--batch-size", "8"],
    "ssgan": ["--arch", "ssgan", "--labels-per-class", "3", "--latent-dim", "8", "--batch-size", "4"],
    "stylegan": ["--arch", "stylegan", "--size", "16", "--g-width", "4", "--d-width", "4", "--w-dim", "8",
                 "--latent-dim", "8", "--mapping-layers", "2", "--max-width", "16", "--r1-every", "2", "--ema",
                 "--batch-size", "8"],
    "began": ["--arch", "began", "--latent-dim", "4", "--g-width", "4", "--d-width", "4", "--bottleneck", "4",
              "--batch-size", "8"],
    "design": ["--arch", "design", "--g-width", "4", "--d-width", "4", "--latent-dim", "8", "--batch-size", "8"],
    "vae": ["--arch", "vae", "--latent-dim", "4", "--vae-width", "4", "--hidden", "16", "--batch-size", "8"],
    "discogan": ["--arch", "discogan", "--domains", "ring:0,grey:1", "--size", "16", "--g-width", "4", "--d-width",
                 "4", "--batch-size", "4"],
    "cyclegan": ["--arch", "cyclegan", "--domains", "ring:0,grey:1", "--size", "32", "--load-size", "36",
                 "--g-width", "4", "--d-width", "4", "--blocks", "1", "--batch-size", "2"],
    "srgan": ["--arch", "srgan", "--g-width", "4", "--d-width", "4", "--blocks", "1", "--size", "16",
              "--batch-size", "4"],
    "stackgan": ["--arch", "stackgan", "--stage1-steps", "2", "--stack-width", "4", "--noise-dim", "4",
                 "--ca-dim", "2", "--batch-size", "8"],
}


@pytest.fixture(scope="module")
def rings(tmp_path_factory) -> Path:
    """32 px rings in two classes named as Fashion-MNIST's (StackGAN writes captions from class names)."""
    return make_image_folder(tmp_path_factory.mktemp("data") / "rings", n_per_class=12, size=32,
                             classes=("Trouser", "Ankle boot"))


def test_every_family_is_tried():
    from gancli.families import catalog
    assert set(catalog.all_families()) <= {args[1] for args in FAMILIES.values()}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_each_family_trains_on_the_device(rings, tmp_path, family):
    out = tmp_path / "run"
    r = run("train", rings, "--out", out, "--steps", 4, "--device", DEVICE, "--log-every", 1, "--sample-every", 2,
            "--no-compile", *FAMILIES[family])  # eager: the compiled path has its own tests below
    assert describe_device() in r.output
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [v for row in rows for k, v in row.items() if k.startswith("loss") and isinstance(v, float)]
    assert [row["step"] for row in rows if "event" not in row] == [1, 2, 3, 4]
    assert losses and all(math.isfinite(v) for v in losses)
    model = gancli.load(out / "export", device=DEVICE)
    if model.is_translation:
        y = model.translate(torch.rand(1, model.channels, 40, 44) * 2 - 1)
        assert y.shape == (1, model.channels, 40, 44)
    elif model.image_operation != "upscale":
        text = model.family.default_texts(model.config) if model.takes_text else None
        x = model.sample(4, seed=1, text=text)
        assert x.shape[0] == 4 and torch.isfinite(x).all()


def describe_device() -> str:
    return "cuda" if DEVICE == "cuda" else "cpu"


def test_training_uses_bf16_and_channels_last_on_cuda(rings, tmp_path):
    from gancli.training.trainer import Trainer, TrainOptions

    t = Trainer(TrainOptions(data=str(rings), out=str(tmp_path / "run"), arch="dcgan", steps=3, g_width=4,
                             d_width=4, latent_dim=8, batch_size=8, device=DEVICE, bf16=True if DEVICE == "cpu"
                             else None))
    assert t.amp  # bf16 autocast: the default on CUDA
    if DEVICE == "cuda":
        assert t.memory_format == torch.channels_last
        conv = next(m for m in t.G.modules() if isinstance(m, torch.nn.ConvTranspose2d))
        assert conv.weight.is_contiguous(memory_format=torch.channels_last) or conv.weight.shape[-1] == 1
    t.run()
    rows = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["loss_d"]) and math.isfinite(r["loss_g"]) for r in rows)


@pytest.mark.parametrize("family", ["dcgan", "cyclegan"])
def test_compiled_training_is_the_default_and_trains(rings, tmp_path, family):
    """On CUDA `gan train` compiles (CUDA graphs included) unless told not to; the batches are cut on the device."""
    out = tmp_path / "run"
    r = run("train", rings, "--out", out, "--steps", 6, "--device", DEVICE, "--log-every", 1, "--sample-every", 3,
            *(["--compile"] if DEVICE == "cpu" else []), *FAMILIES[family])
    assert r.exit_code == 0, r.output
    log = (out / "log.txt").read_text()
    assert "compiled (torch.compile" + (", CUDA graphs)" if DEVICE == "cuda" else ")") in log
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2, 3, 4, 5, 6]
    assert all(math.isfinite(v) for row in rows for k, v in row.items() if k.startswith("loss"))
    assert (out / "export" / "model.safetensors").is_file()


@pytest.mark.parametrize("family", ["dcgan", "cyclegan"])
def test_a_run_killed_with_sigkill_resumes_bit_identically(rings, tmp_path, family):
    steps = 24

    def cmd(out, *extra):
        return [sys.executable, "-m", "gancli", "train", str(rings), "--out", str(out), "--steps", str(steps),
                "--device", DEVICE, "--log-every", "1", "--sample-every", "1000", "--checkpoint-every", "4",
                "--compile", *FAMILIES[family], *extra]  # compiled, with CUDA graphs on CUDA: the default there

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    straight = subprocess.run(cmd(tmp_path / "straight"), capture_output=True, text=True, env=env)
    assert straight.returncode == 0, straight.stderr[-2000:]
    cut = tmp_path / "cut"
    proc = subprocess.Popen(cmd(cut), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    sigkill_after_checkpoint(proc, cut)
    resumed = subprocess.run([w for w in cmd(cut, "--resume") if w not in ("--steps", str(steps))],
                             capture_output=True, text=True, env=env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = load_file(tmp_path / "straight" / "export" / "model.safetensors")
    b = load_file(cut / "export" / "model.safetensors")
    differ = {k: float((a[k].float() - b[k].float()).abs().max()) for k in a if not torch.equal(a[k], b[k])}
    assert a.keys() == b.keys() and not differ, f"{len(differ)} of {len(a)} tensors differ: {differ}"


# ------------------------------------------------------------------------------------------------ images
def photo(path: Path, w: int, h: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    img = np.stack([128 + 100 * np.sin(xx / 5 + c) * np.cos(yy / 7) for c in range(3)], -1)
    img = (img + rng.normal(0, 8, img.shape)).clip(0, 255).astype(np.uint8)
    Image.fromarray(img).save(path)
    return path


def test_translate_on_the_device_gives_the_cpus_picture(translator, tmp_path):
    src = photo(tmp_path / "horse.png", 70, 52)
    for device in ("cpu", DEVICE):
        run("translate", translator, src, "-o", tmp_path / f"{device}-out.png", "--device", device)
    a, b = (np.asarray(Image.open(tmp_path / f"{d}-out.png"), dtype=np.int16) for d in ("cpu", DEVICE))
    assert a.shape == b.shape == (52, 70, 3) and np.abs(a - b).max() <= 2


def test_upscale_on_the_device_gives_the_cpus_picture(tmp_path):
    src = photo(tmp_path / "small.png", 48, 40)
    for device in ("cpu", DEVICE):
        run("upscale", "srresnet-x4", src, "-o", tmp_path / f"{device}-big.png", "--device", device)
    a, b = (np.asarray(Image.open(tmp_path / f"{d}-big.png"), dtype=np.int16) for d in ("cpu", DEVICE))
    assert a.shape == b.shape == (160, 192, 3) and np.abs(a - b).max() <= 2
