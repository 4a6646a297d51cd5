import json

import pytest
import torch
from safetensors.torch import load_file, save_file

import gancli
from gancli.use.model import WeightsError


def test_roundtrip_same_pixels(tiny_model_dir):
    a = gancli.load(tiny_model_dir, device="cpu")
    b = gancli.load(tiny_model_dir, device="cpu")
    assert torch.equal(a.sample(8, seed=3), b.sample(8, seed=3))
    assert a.sample(4, seed=3).shape == (4, 1, 28, 28)


def test_config_and_card_layout(tiny_model_dir):
    names = {p.name for p in tiny_model_dir.iterdir()}
    assert names == {"config.json", "model.safetensors", "README.md"}
    cfg = json.loads((tiny_model_dir / "config.json").read_text())
    assert len(cfg["files"]["model.safetensors"]["sha256"]) == 64
    keys = load_file(tiny_model_dir / "model.safetensors")
    assert any(k.startswith("generator.") for k in keys) and any(k.startswith("discriminator.") for k in keys)


def test_sample_is_independent_of_count_and_batch_size(tiny_model_dir):
    m = gancli.load(tiny_model_dir, device="cpu")
    many = m.sample(50, seed=7, batch_size=16)
    few = m.sample(5, seed=7, batch_size=1)
    assert torch.allclose(many[:5], few, atol=1e-5)
    pixels_many = (many[:5] + 1) * 127.5
    assert (pixels_many.round() - ((few + 1) * 127.5).round()).abs().max() <= 1


def test_seeds_select_single_images(tiny_model_dir):
    m = gancli.load(tiny_model_dir, device="cpu")
    by_seeds = m.sample(seeds=[4, 9])
    assert torch.allclose(by_seeds[1], m.sample(1, seed=9)[0], atol=1e-6)
    assert not torch.allclose(by_seeds[0], by_seeds[1])


def test_different_seeds_differ(tiny_model_dir):
    m = gancli.load(tiny_model_dir, device="cpu")
    assert (m.sample(2, seed=0) - m.sample(2, seed=1)).abs().mean() > 1e-3


def test_pil_output(tiny_model_dir):
    images = gancli.load(tiny_model_dir, device="cpu").sample_images(3, seed=0)
    assert len(images) == 3 and images[0].size == (28, 28) and images[0].mode == "L"


def test_sha_mismatch_is_refused(tiny_model_dir):
    cfg_path = tiny_model_dir / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["files"]["model.safetensors"]["sha256"] = "0" * 64
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(WeightsError, match="sha256"):
        gancli.load(tiny_model_dir, device="cpu")


def _drop_sha(folder):
    cfg = json.loads((folder / "config.json").read_text())
    cfg.pop("files")
    (folder / "config.json").write_text(json.dumps(cfg))


def test_truncated_weights_are_a_clear_error(tiny_model_dir):
    _drop_sha(tiny_model_dir)  # without a recorded hash, the safetensors reader must catch it
    w = tiny_model_dir / "model.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    with pytest.raises(WeightsError, match="truncated"):
        gancli.load(tiny_model_dir, device="cpu")


def test_pickle_is_never_loaded(tiny_model_dir, tmp_path):
    _drop_sha(tiny_model_dir)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"x": Evil()}, tiny_model_dir / "model.safetensors")
    with pytest.raises(WeightsError):
        gancli.load(tiny_model_dir, device="cpu")
    assert not marker.exists()


def test_shape_mismatch_names_the_tensor(tiny_model_dir):
    _drop_sha(tiny_model_dir)
    state = load_file(tiny_model_dir / "model.safetensors")
    key = next(k for k in state if k.startswith("generator.") and k.endswith("weight") and state[k].dim() == 4)
    state[key] = torch.zeros(1, 1, 1, 1)
    save_file(state, tiny_model_dir / "model.safetensors")
    with pytest.raises(WeightsError, match="shape mismatch"):
        gancli.load(tiny_model_dir, device="cpu")


def test_missing_tensor_is_reported(tiny_model_dir):
    _drop_sha(tiny_model_dir)
    state = load_file(tiny_model_dir / "model.safetensors")
    state.pop(next(k for k in state if k.startswith("generator.")))
    save_file(state, tiny_model_dir / "model.safetensors")
    with pytest.raises(WeightsError, match="missing"):
        gancli.load(tiny_model_dir, device="cpu")


def test_repr_mentions_architecture(tiny_model_dir):
    assert "dcgan" in repr(gancli.load(tiny_model_dir, device="cpu"))


def test_device_errors():
    from gancli.devices import DeviceError, resolve_device

    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(DeviceError):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA is not available"):
            resolve_device("cuda:0")
