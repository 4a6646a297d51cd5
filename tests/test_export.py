"""gan export: ONNX and TorchScript files that give PyTorch's images (1e-4, fp32) for any batch size, and any height
and width where the network is fully convolutional; their metadata; one-line errors; the documented example."""
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from gancli import latents
from gancli.cli import app
from gancli.families import catalog, stackgan
from gancli.families.base import Family
from gancli.use import export as ex
from gancli.use.model import GANModel, load

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")  # TorchScript, as users load it
runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
FORMATS = ["onnx", "torchscript"]
TOL = 1e-4
DIFFS: dict[str, float] = {}  # the largest difference per check, printed with -s (for the record)


def _tiny(config: dict) -> GANModel:
    """A random-weight model with weights large enough that its images are not all ~0."""
    torch.manual_seed(0)
    model = GANModel.from_config(config | {"name": "tiny"}, device="cpu")
    for p in model.generator.parameters():
        torch.nn.init.normal_(p, 0.0, 0.3)
    for m in model.generator.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model


def _stack_config() -> dict:
    names = ["Trouser", "Bag"]
    vocab = stackgan.vocabulary_of(names)
    return {"architecture": "stackgan", "arch_args": {"vocab_size": len(vocab) + 1, "text_classes": 2, "noise_dim": 4,
                                                      "ca_dim": 2, "g_width": 4, "d_width": 4},
            "latent_dim": 8, "image_size": 32, "channels": 1, "class_names": names, "vocabulary": vocab}


def _sampler_config(arch: str, **arch_args) -> dict:
    """A 16 px grey sampler of ``arch`` with 8 latents."""
    return {"architecture": arch, "arch_args": {"latent_dim": 8, "image_size": 16, "channels": 1} | arch_args,
            "latent_dim": 8, "image_size": 16, "channels": 1}


CONFIGS = {
    "dcgan": {"architecture": "dcgan", "arch_args": {"latent_dim": 8, "image_size": 16, "channels": 1, "g_width": 4,
                                                     "d_width": 4}, "latent_dim": 8, "image_size": 16, "channels": 1},
    "acgan": {"architecture": "acgan", "arch_args": {"num_classes": 3, "latent_dim": 8, "image_size": 16,
                                                     "channels": 1, "g_width": 4, "d_width": 4},
              "latent_dim": 8, "image_size": 16, "channels": 1, "class_names": ["a", "b", "c"]},
    "cyclegan": {"architecture": "cyclegan", "arch_args": {"g_width": 4, "d_width": 4, "n_blocks": 1},
                 "image_size": 16, "channels": 3, "task": "translation", "domains": ["horse", "zebra"]},
    "srgan": {"architecture": "srgan", "arch_args": {"g_width": 4, "d_width": 4, "n_blocks": 1, "scale": 2,
                                                     "channels": 3}, "image_size": 16, "channels": 3, "scale": 2},
    "stackgan": _stack_config(),
    # the other samplers, as small
    "began": _sampler_config("began", g_width=4, d_width=4, hidden=4),
    "design": _sampler_config("design", design_classes=3, g_width=4, d_width=4),
    "mlp": _sampler_config("mlp", g_hidden=[8], d_hidden=[8]),
    "ssgan": _sampler_config("ssgan", ssgan_classes=3, ssgan_net="conv", g_width=4, d_width=4),
    "stylegan": _sampler_config("stylegan", w_dim=8, mapping_layers=2, g_width=4, d_width=4, max_width=16),
    "vae": _sampler_config("vae", width=4, hidden=8),
    "r3gan": _sampler_config("r3gan", g_width=4, d_width=4, blocks=1, cardinality=2, num_classes=3)
    | {"class_names": ["a", "b", "c"]},
}
# The samplers: every family whose file is Family's sampler graph, z (and a class label) -> images. The others
# (translators, super-resolution, captions) declare graphs of their own, each with a test below.
SAMPLERS = sorted(n for n, f in catalog.all_families().items() if type(f).export_graphs is Family.export_graphs)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Each tiny model exported once per format: (model, format) -> (model, written files)."""
    root, cache = tmp_path_factory.mktemp("exports"), {}

    def get(kind: str, fmt: str):
        if fmt == "onnx":
            pytest.importorskip("onnxruntime")
        if (kind, fmt) not in cache:
            assert kind in CONFIGS, f"give {kind} a tiny config in CONFIGS"
            model = _tiny(CONFIGS[kind])
            cache[kind, fmt] = model, ex.export(model, fmt, root / f"{kind}{ex.FORMATS[fmt]}")
        return cache[kind, fmt]

    return get


def run_file(path: Path, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """The file run as a user would: onnxruntime, or torch.jit.load; no gancli."""
    if path.suffix == ".onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return torch.from_numpy(session.run(None, {k: v.numpy() for k, v in inputs.items()})[0])
    with torch.no_grad():
        return torch.jit.load(str(path))(*inputs.values())


def same(got: torch.Tensor, want: torch.Tensor, key: str):
    assert got.shape == want.shape, (got.shape, want.shape)
    diff = float((got - want).abs().max())
    DIFFS[key] = max(DIFFS.get(key, 0.0), diff)
    assert diff <= TOL, (key, diff)


# ------------------------------------------------------------------------------------------ parity
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", SAMPLERS)
def test_samplers_match_pytorch_for_any_seed_and_batch_size(exported, kind, fmt):
    model, (w,) = exported(kind, fmt)
    for seed, n in ((0, 1), (7, 3), (123, 8)):
        z = model.latents_for(n, seed)
        inputs = {"z": z}
        if model.is_conditional:
            inputs["label"] = torch.arange(n) % 3
        same(run_file(w.path, inputs), model.sample(n, seed=seed), f"{kind} {fmt}")


@pytest.mark.parametrize("fmt", FORMATS)
def test_stackgan_takes_caption_word_ids_of_any_length(exported, fmt):
    model, (w,) = exported("stackgan", fmt)
    meta = ex.read_metadata(w.path)
    for texts, seed in ((["a bag", "long pants"], 0), (["trousers"], 5), (["a leather shoulder bag", "a pair of trousers"] * 2, 9)):
        ids = stackgan.tokens(meta["vocabulary"], texts)
        ids = ids[:, :max(1, int((ids > 0).sum(1).max()))]  # only as many words as the longest caption
        n = len(texts)
        same(run_file(w.path, {"z": model.latents_for(n, seed), "tokens": ids}),
             model.sample(n, seed=seed, text=texts), f"stackgan {fmt}")


@pytest.mark.parametrize("fmt", FORMATS)
def test_translators_write_one_file_per_direction_and_take_any_size(exported, fmt):
    model, written = exported("cyclegan", fmt)
    assert [w.path.name for w in written] == [f"cyclegan.a2b{ex.FORMATS[fmt]}", f"cyclegan.b2a{ex.FORMATS[fmt]}"]
    g = torch.Generator().manual_seed(1)
    for w in written:
        for n, h, wd in ((1, 16, 16), (2, 12, 28)):  # two heights and widths: the axes are really dynamic
            x = torch.rand(n, 3, h, wd, generator=g) * 2 - 1
            same(run_file(w.path, {"images": x}), model.translate(x, w.suffix), f"cyclegan {fmt}")


@pytest.mark.parametrize("fmt", FORMATS)
def test_super_resolution_takes_any_size(exported, fmt):
    model, (w,) = exported("srgan", fmt)
    g = torch.Generator().manual_seed(2)
    for n, h, wd in ((1, 8, 8), (3, 10, 6)):
        x = torch.rand(n, 3, h, wd, generator=g) * 2 - 1
        got = run_file(w.path, {"images": x})
        assert got.shape == (n, 3, 2 * h, 2 * wd)
        with torch.no_grad():
            same(got, model.generator(x).clamp(-1, 1), f"srgan {fmt}")


# ------------------------------------------------------------------------------------------ metadata
def test_metadata_reads_back_in_each_format(exported):
    _, (onnx_file, _) = exported("cyclegan", "onnx")
    import onnxruntime as ort

    props = ort.InferenceSession(str(onnx_file.path)).get_modelmeta().custom_metadata_map
    assert props["architecture"] == "cyclegan" and json.loads(props["domains"]) == ["horse", "zebra"]
    assert props["direction"] == "a2b" and props["target_domain"] == "zebra"
    assert json.loads(props["value_range"]) == [-1, 1] and json.loads(props["config.json"])["multiple"] == 4
    inputs = json.loads(props["inputs"])
    assert inputs[0]["name"] == "images" and inputs[0]["shape"] == ["batch", 3, "height", "width"]

    _, (pt,) = exported("acgan", "torchscript")
    extra = {"config.json": ""}
    torch.jit.load(str(pt.path), _extra_files=extra)
    meta = json.loads(extra["config.json"])
    assert meta["latent_dim"] == 8 and meta["class_names"] == ["a", "b", "c"] and meta["value_range"] == [-1, 1]
    assert [i["name"] for i in meta["inputs"]] == ["z", "label"] and meta["inputs"][1]["dtype"] == "int64"
    assert meta["outputs"][0]["shape"] == ["batch", 1, 16, 16]


def test_fp16_weights_are_exported_in_fp32(tmp_path):
    pytest.importorskip("onnx")
    import onnx

    folder = _tiny(CONFIGS["dcgan"]).save_pretrained(tmp_path / "half", dtype=torch.float16)
    model = load(folder, device="cpu")
    (w,) = ex.export(model, "onnx", tmp_path / "half.onnx")
    weights = onnx.load(str(w.path)).graph.initializer
    assert weights and {t.data_type for t in weights} <= {onnx.TensorProto.FLOAT, onnx.TensorProto.INT64}
    same(run_file(w.path, {"z": model.latents_for(4, 3)}), model.sample(4, seed=3), "dcgan fp16")


# ------------------------------------------------------------------------------------------ the command
def _one_error(r, message: str):
    assert r.exit_code == 2, (r.exit_code, r.output)
    assert r.output.startswith("error: ") and r.output.strip().count("\n") == 0, r.output
    assert message in r.output, r.output


def test_the_command_writes_and_says_so(tiny_model_dir, tmp_path):
    r = runner.invoke(app, ["export", str(tiny_model_dir), "-o", str(tmp_path / "sub" / "g.pt")])
    assert r.exit_code == 0, r.output
    assert "wrote" in r.output and "torchscript" in r.output and (tmp_path / "sub" / "g.pt").stat().st_size > 1000
    assert ex.read_metadata(tmp_path / "sub" / "g.pt")["latent_dim"] == 8


def test_one_direction_goes_to_the_output_itself(translator, tmp_path):
    out = tmp_path / "out"
    r = runner.invoke(app, ["export", str(translator), "-o", str(out / "z.pt"), "--direction", "horse"])
    assert r.exit_code == 0, r.output
    assert [p.name for p in out.iterdir()] == ["z.pt"]
    assert ex.read_metadata(out / "z.pt")["target_domain"] == "horse"


def test_a_folder_in_a_directions_place_is_one_line_and_nothing_is_written(translator, tmp_path):
    (tmp_path / "out" / "h.a2b.pt").mkdir(parents=True)
    _one_error(runner.invoke(app, ["export", str(translator), "-o", str(tmp_path / "out" / "h.pt")]),
               "h.a2b.pt: it is a folder")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["h.a2b.pt"]  # not b2a either


@pytest.mark.parametrize("args, message", [
    (["no-such-model", "-o", "{tmp}/x.pt"], "unknown model"),
    (["{model}", "-o", "{tmp}/x.pt", "--format", "tflite"], "unknown --format 'tflite'"),
    (["{model}", "-o", "{tmp}/x.onnx", "--format", "torchscript"], "does not match the extension"),
    (["{model}", "-o", "{tmp}/x.bin"], "give --format onnx or --format torchscript"),
    (["{model}", "-o", "{tmp}"], "is a folder"),
    (["{model}", "-o", "{tmp}/file.txt/x.pt"], "is a file, not a folder"),
    (["{model}", "-o", "{tmp}/x.pt", "--direction", "a2b"], "--direction is for translation models"),
    (["classifier-mnist", "-o", "{tmp}/x.pt"], "is a classifier"),
])
def test_bad_input_is_one_line(tiny_model_dir, tmp_path, args, message):
    out = tmp_path / "out"
    out.mkdir()
    (out / "file.txt").write_text("mine")
    args = [a.format(tmp=out, model=tiny_model_dir) for a in args]
    _one_error(runner.invoke(app, ["export", *args]), message)
    assert sorted(p.name for p in out.iterdir()) == ["file.txt"]


def test_an_unwritable_folder_is_one_line(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(ex.os, "access", lambda path, mode: False)  # as for a user without rights (not root)
    _one_error(runner.invoke(app, ["export", str(tiny_model_dir), "-o", str(tmp_path / "new" / "g.pt")]),
               f"{tmp_path} is not writable")
    assert not (tmp_path / "new").exists()


def test_without_onnx_one_line_says_what_to_install(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)  # `import onnxruntime` fails
    _one_error(runner.invoke(app, ["export", str(tiny_model_dir), "-o", str(tmp_path / "g.onnx")]),
               "pip install onnx onnxruntime  (in a gancli checkout: pip install '.[export]')")
    r = runner.invoke(app, ["export", str(tiny_model_dir), "-o", str(tmp_path / "g.pt")])  # needs nothing more
    assert r.exit_code == 0, r.output


def test_an_operator_onnx_lacks_is_one_line_that_offers_torchscript(tiny_model_dir, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    from gancli.families import dcgan

    drawn = dcgan.DCGANGenerator.forward
    monkeypatch.setattr(dcgan.DCGANGenerator, "forward", lambda self, z, labels=None:
                        drawn(self, torch.special.ndtr(z), labels))  # ndtr: no ONNX operator at our opset
    _one_error(runner.invoke(app, ["export", str(tiny_model_dir), "-o", str(tmp_path / "g.onnx")]),
               "this model cannot be exported to ONNX (Exporting the operator 'aten::special_ndtr' to ONNX")
    assert not (tmp_path / "g.onnx").exists()
    r = runner.invoke(app, ["export", str(tiny_model_dir), "-o", str(tmp_path / "g.pt")])
    assert r.exit_code == 0, r.output


def test_a_failed_export_leaves_the_users_file_as_it_was(tiny_model_dir, tmp_path, monkeypatch):
    (tmp_path / "out").mkdir()
    target = tmp_path / "out" / "g.pt"
    target.write_bytes(b"my earlier export")

    def broken(*a, **k):
        raise RuntimeError("the exporter broke")

    monkeypatch.setattr(ex, "check", broken)
    r = runner.invoke(app, ["export", str(tiny_model_dir), "-o", str(target)])
    assert r.exit_code != 0 and isinstance(r.exception, RuntimeError)
    assert target.read_bytes() == b"my earlier export" and [p.name for p in target.parent.iterdir()] == ["g.pt"]


# ------------------------------------------------------------------------------------------ docs/export.md
def documented_example() -> str:
    text = (ROOT / "docs" / "export.md").read_text()
    blocks = re.findall(r"<!-- example -->\n```python\n(.*?)```", text, re.S)
    assert len(blocks) == 1, "docs/export.md marks one example with <!-- example -->"
    return blocks[0]


def test_the_documented_onnxruntime_example_draws_gan_samples_digits(tmp_path, monkeypatch):
    """The one check on a real zoo model: the docs' example, run as written without gancli, gives the images of
    `gan sample dcgan-mnist --seed 0 -n 8` (1e-4), and its PNG their pixels (1 grey level)."""
    pytest.importorskip("onnxruntime")
    r = runner.invoke(app, ["export", "dcgan-mnist", "-o", str(tmp_path / "dcgan-mnist.onnx")])
    assert r.exit_code == 0, r.output
    monkeypatch.chdir(tmp_path)
    code, scope = documented_example(), {}
    assert not re.search(r"^\s*(import|from)\s+gancli", code, re.M)  # it runs without gancli
    exec(compile(code, "docs/export.md", "exec"), scope)
    want = load("dcgan-mnist", device="cpu").sample(8, seed=0)
    same(torch.from_numpy(scope["images"]), want, "dcgan-mnist onnx (docs example)")
    strip = np.asarray(Image.open(tmp_path / "digits.png"), dtype=np.int16)
    pixels = ((want.clamp(-1, 1) + 1) * 127.5).round().to(torch.int16)[:, 0]  # as gan sample writes them
    assert strip.shape == (28, 8 * 28)
    assert np.abs(strip - np.hstack(list(pixels.numpy()))).max() <= 1


def test_latents_in_the_example_are_gancli_latents():
    """The example's splitmix64 is gancli.latents' (any seed and index, not only the example's)."""
    pytest.importorskip("onnxruntime")  # the example's first line imports it
    scope = {}
    code = documented_example()
    exec(compile(code[:code.index("session = ")], "docs/export.md", "exec"), scope)
    for seed, index in ((0, 0), (3, 17), (2**40 + 5, 999)):
        assert torch.equal(scope["latent"](seed, index, 100), latents.latent(seed, index, 100))


def teardown_module():
    for key, diff in sorted(DIFFS.items()):
        print(f"max |difference| {key}: {diff:.2e}")
