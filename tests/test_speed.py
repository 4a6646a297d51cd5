"""Issue 14's fast paths: the generator rewritten for inference, --backend onnxruntime and --bf16 draw what the fp32
eager generator draws (exactly enough, or within bf16's tolerance), on the same latents."""
import copy
import sys

import numpy as np
import pytest
import torch
from conftest import tiny_config
from PIL import Image
from typer.testing import CliRunner

from gancli import latents
from gancli.cli import app
from gancli.data.imageio import to_uint8
from gancli.families.inference import FoldedConvTranspose2d
from gancli.training.trainer import Trainer, TrainOptions
from gancli.use import backends
from gancli.use.model import GANModel

runner = CliRunner()


def eager(model, n, seed=0, labels=None):
    """What gan drew before issue 14: the plain eager generator on the per-sample latents."""
    z = latents.latents([(seed, i) for i in range(n)], model.latent_dim)
    g = copy.deepcopy(model.generator).to(memory_format=torch.contiguous_format).eval()
    with torch.inference_mode():
        return g(z, labels)


def assert_same_pixels(a, b, share=0.999):
    a, b = to_uint8(a).astype(int), to_uint8(b).astype(int)
    assert np.abs(a - b).max() <= 1
    assert (a == b).mean() >= share


@pytest.mark.parametrize("classes", [0, 3])
def test_sampling_runs_the_rewritten_generator_and_draws_the_eager_images(tiny_model_dir, classes):
    if classes:
        cfg = tiny_config() | {"arch_args": tiny_config()["arch_args"] | {"num_classes": classes}}
        torch.manual_seed(1)
        model = GANModel.from_config(cfg)
        for m in model.generator.modules():  # batch-norm statistics that are not the identity
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 2.0), m.weight.data.uniform_(0.5, 2)
    else:
        model = GANModel.from_pretrained(tiny_model_dir, device="cpu")
    fast = model.sampling_generator()
    folded = [m for m in fast.modules() if isinstance(m, FoldedConvTranspose2d)]
    assert len(folded) == 3 and not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    labels = torch.arange(20) % classes if classes else None
    got = model.sample(20, seed=4)
    want = eager(model, 20, seed=4, labels=labels)
    assert float((got - want).abs().max()) < 1e-5
    assert_same_pixels(got, want)


def test_the_rewritten_generator_follows_weight_changes(tiny_model_dir):
    model = GANModel.from_pretrained(tiny_model_dir, device="cpu")
    before = model.sample(4)
    with torch.no_grad():
        for p in model.generator.parameters():
            p.mul_(-1.5)
    after = model.sample(4)
    assert float((after - before).abs().max()) > 0.1
    assert float((after - eager(model, 4)).abs().max()) < 1e-5


def test_backend_onnxruntime_draws_torch_pixels_and_caches_the_graph(tiny_model_dir, tmp_path, gan_cache):
    pytest.importorskip("onnxruntime")  # the export extra
    paths = {}
    for backend in ("torch", "onnxruntime", "onnxruntime"):
        paths[backend] = tmp_path / f"{backend}.png"
        r = runner.invoke(app, ["sample", str(tiny_model_dir), "-n", "16", "--seed", "2", "--device", "cpu",
                                "--backend", backend, "-o", str(paths[backend])])
        assert r.exit_code == 0, r.output
        assert backend in r.output
    a, b = (np.asarray(Image.open(paths[k])).astype(int) for k in ("torch", "onnxruntime"))
    assert np.abs(a - b).max() <= 1 and (a == b).mean() > 0.999
    assert len(list((gan_cache / "onnx").glob("*.onnx"))) >= 1
    model = GANModel.from_pretrained(tiny_model_dir, device="cpu")
    assert backends.use(model, "onnxruntime") == "onnxruntime"
    assert float((model.sample(8, seed=3) - eager(model, 8, seed=3)).abs().max()) < 1e-4


def test_translate_backend_onnxruntime_and_bf16_against_torch(translator, tmp_path):
    pytest.importorskip("onnxruntime")  # the export extra
    src = tmp_path / "horse.png"
    Image.fromarray((np.random.default_rng(0).random((36, 44, 3)) * 255).astype(np.uint8)).save(src)
    outs = {}
    for args in (["--backend", "torch"], ["--backend", "onnxruntime"], ["--bf16"]):
        outs[args[-1]] = tmp_path / f"out-{args[-1]}.png"
        r = runner.invoke(app, ["translate", str(translator), str(src), "-o", str(outs[args[-1]]), "--device", "cpu",
                                *args])
        assert r.exit_code == 0, r.output
    torch_px, ort_px, bf16_px = (np.asarray(Image.open(outs[k])).astype(int) for k in ("torch", "onnxruntime", "--bf16"))
    assert ort_px.shape == torch_px.shape == (36, 44, 3)
    assert np.abs(ort_px - torch_px).max() <= 1
    assert np.abs(bf16_px - torch_px).mean() < 3  # bf16: close, not the same


def test_bf16_sampling_is_close_to_fp32(tiny_model_dir):
    model = GANModel.from_pretrained(tiny_model_dir, device="cpu")
    fp32 = model.sample(16)
    model.bf16 = True
    bf16 = model.sample(16)
    assert 0 < float((bf16 - fp32).abs().mean()) < 0.05
    # it ran a bf16 copy: the model's own generator (saved, exported) stays fp32, and fp32 sampling is as before
    assert model.sampling_generator() is not model.generator
    assert {p.dtype for p in model.sampling_generator().parameters()} <= {torch.bfloat16}
    assert {p.dtype for p in model.generator.parameters()} == {torch.float32}
    model.bf16 = False
    assert torch.equal(model.sample(16), fp32)


def test_backend_errors_are_one_line(tiny_model_dir, tmp_path, monkeypatch):
    cases = [(["--backend", "tensorrt"], "unknown --backend"),
             (["--backend", "onnxruntime", "--bf16"], "--bf16 is for --backend torch")]
    for args, words in cases:
        r = runner.invoke(app, ["sample", str(tiny_model_dir), "-o", str(tmp_path / "s.png"), *args])
        assert r.exit_code == 2 and r.output.startswith("error:") and words in r.output, r.output
        assert r.output.count("\n") == 1 and not (tmp_path / "s.png").exists()
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)  # as if the export extra were missing
    for command in (["sample", str(tiny_model_dir), "-o", str(tmp_path / "s.png")],
                    ["translate", str(tiny_model_dir), str(tmp_path / "x.png")]):
        r = runner.invoke(app, [*command, "--backend", "onnxruntime"])
        assert r.exit_code == 2 and r.output.startswith("error:") and "pip install" in r.output, r.output
        assert r.output.count("\n") == 1


def test_train_bf16_autocast_runs_on_the_cpu(image_folder, tmp_path):
    t = Trainer(TrainOptions(data=str(image_folder), out=str(tmp_path / "run"), steps=2, batch_size=8, g_width=4,
                             d_width=4, latent_dim=8, device="cpu", bf16=True))
    assert t.amp
    stats = t.train_step()
    assert all(torch.isfinite(torch.as_tensor(v)).all() for v in stats.values())


_REFAULTS = """
import resource, sys, torch
from gancli.devices import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
conv, x = torch.nn.Conv2d(32, 128, 3, padding=1), torch.randn(1, 32, 256, 256)
with torch.inference_mode():
    torch.relu(conv(x))  # a tile's work: 32 MB activations made and freed
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        torch.relu(conv(x))
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_commands_keep_freed_tensor_memory_instead_of_faulting_it_in_again(tiny_model_dir, tmp_path, monkeypatch):
    """gan's commands call keep_freed_memory: five more tiles' worth of 32 MB activations reuse the first's pages,
    where glibc's default returns each to the kernel, which faults in and zeroes every page again."""
    import subprocess

    faults = {}
    for mode in ("default", "keep"):
        r = subprocess.run([sys.executable, "-c", _REFAULTS, mode], capture_output=True, text=True, timeout=120)
        kept, faults[mode] = r.stdout.split()
        assert kept == str(mode == "keep"), r.stderr[-2000:]
    pages = 5 * 2 * (128 * 256 * 256 * 4) // 4096  # two activations a tile
    assert int(faults["default"]) > 0.9 * pages and int(faults["keep"]) < 0.01 * pages, faults
    import gancli.devices

    calls = []
    monkeypatch.setattr(gancli.devices, "keep_freed_memory", lambda: calls.append(1) or True)
    r = CliRunner().invoke(app, ["sample", str(tiny_model_dir), "-n", "4", "-o", str(tmp_path / "g.png")])
    assert r.exit_code == 0 and calls == [1], r.output
