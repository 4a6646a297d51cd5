"""The FID Inception-v3 (gancli.quality.inception) with random weights: loading, strict checks, output contract.

Parity with torch-fidelity's port of the 2015 TensorFlow graph was checked offline (same 566 tensor names, features
equal to ~1e-5); the real weights are not needed here."""
import collections
import os

import pytest
import torch

from gancli.quality.inception import FIDInceptionV3, load_fid_inception, resize_bilinear_tf1


class TallyWithExtras(collections.Counter):
    """An arbitrary Python object: weights_only loading must refuse to unpickle it."""


@pytest.fixture(scope="module")
def random_state() -> dict:
    torch.manual_seed(0)
    state = FIDInceptionV3().state_dict()
    for name, value in state.items():  # random batch-norm statistics, so eval mode is not a no-op
        if name.endswith("running_mean"):
            value.normal_(0, 0.1)
        elif name.endswith("running_var"):
            value.uniform_(0.5, 1.5)
    return state


@pytest.fixture(scope="module")
def weights_file(random_state, tmp_path_factory):
    path = tmp_path_factory.mktemp("inception") / "weights.pth"
    torch.save(random_state, path)
    return path


@pytest.fixture(scope="module")
def model(weights_file):
    return load_fid_inception(weights_file)


def assert_one_line_value_error(path, *fragments):
    with pytest.raises(ValueError) as excinfo:
        load_fid_inception(path)
    message = str(excinfo.value)
    assert "\n" not in message
    assert str(path) in message and "not the FID Inception-v3 weights file" in message
    for fragment in fragments:
        assert fragment in message


def test_loads_and_returns_pool_features(model, random_state):
    assert not model.training
    assert model.num_features == 2048
    assert all(not p.requires_grad for p in model.parameters())
    assert torch.equal(model.state_dict()["Mixed_7c.branch_pool.bn.running_var"],
                       random_state["Mixed_7c.branch_pool.bn.running_var"])
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        first, second = model(images), model(images)
    assert first.shape == (2, 2048) and first.dtype == torch.float32
    assert torch.isfinite(first).all() and (first >= 0).all()  # averaged ReLU outputs
    assert torch.equal(first, second)


def test_grayscale_is_repeated_to_rgb(model):
    grey = torch.rand(2, 1, 48, 48, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.no_grad():
        from_grey, from_rgb = model(grey), model(grey.repeat(1, 3, 1, 1))
    assert from_grey.shape == (2, 2048)
    torch.testing.assert_close(from_grey, from_rgb, rtol=0, atol=1e-6)


def test_state_dict_nested_under_state_dict_key(random_state, tmp_path):
    path = tmp_path / "nested.pth"
    torch.save({"state_dict": random_state, "epoch": 3}, path)
    assert isinstance(load_fid_inception(path), FIDInceptionV3)


def test_missing_tensor_is_rejected(random_state, tmp_path):
    path = tmp_path / "missing.pth"
    torch.save({k: v for k, v in random_state.items() if k != "fc.bias"}, path)
    assert_one_line_value_error(path, "missing 1 tensor(s)", "fc.bias")


def test_wrong_shape_and_extra_tensor_are_rejected(random_state, tmp_path):
    path = tmp_path / "other.pth"
    torch.save(random_state | {"fc.weight": torch.zeros(1000, 2048), "aux.weight": torch.zeros(1)}, path)
    assert_one_line_value_error(path, "shape mismatch", "fc.weight", "unexpected", "aux.weight")


def test_files_that_are_not_weights_are_rejected(tmp_path):
    noise = tmp_path / "noise.pth"
    noise.write_bytes(os.urandom(4096))
    assert_one_line_value_error(noise)

    pickled = tmp_path / "object.pth"
    torch.save(TallyWithExtras("abracadabra"), pickled)
    assert_one_line_value_error(pickled)

    tensor = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), tensor)
    assert_one_line_value_error(tensor, "not a state dict")

    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    assert_one_line_value_error(empty)

    with pytest.raises(FileNotFoundError):
        load_fid_inception(tmp_path / "absent.pth")


def test_resize_samples_like_tensorflow_1x():
    # TF1 ResizeBilinear(align_corners=False) reads source pixel i * in/out: doubling 2 -> 4 gives 0, 0.5, 1, 1
    row = torch.tensor([[[[0.0, 2.0]]]]).expand(1, 1, 2, 2)
    out = resize_bilinear_tf1(row, size=4)
    assert out[0, 0, 0].tolist() == [0.0, 1.0, 2.0, 2.0]
    same = torch.rand(1, 3, 299, 299)
    assert resize_bilinear_tf1(same) is same


def test_rejects_bad_channel_count(model):
    with pytest.raises(ValueError, match="shape"):
        model(torch.zeros(1, 4, 32, 32))
