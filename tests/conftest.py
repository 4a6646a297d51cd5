import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gancli.use.model import GANModel

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def tiny_config(arch="dcgan", size=28, channels=1, latent_dim=8):
    args = {"latent_dim": latent_dim, "image_size": size, "channels": channels}
    if arch == "dcgan":
        args |= {"g_width": 4, "d_width": 4}
    else:
        args |= {"g_hidden": [16], "d_hidden": [16]}
    return {"architecture": arch, "arch_args": args, "latent_dim": latent_dim, "image_size": size,
            "channels": channels, "name": "tiny", "dataset": "synthetic"}


@pytest.fixture(autouse=True)
def gan_cache(tmp_path_factory, monkeypatch) -> Path:
    """$GAN_CACHE, empty for each test and never the user's own: `gan eval`'s real features (gancli.evaluation.feature_cache,
    references/) and the ONNX graphs of `--backend onnxruntime` (onnx/)."""
    folder = tmp_path_factory.mktemp("gan-cache")
    monkeypatch.setenv("GAN_CACHE", str(folder))
    return folder


@pytest.fixture
def tiny_model_dir(tmp_path) -> Path:
    """A random-weight 28x28 DCGAN saved in zoo layout."""
    import torch

    torch.manual_seed(0)
    model = GANModel.from_config(tiny_config())
    for p in model.generator.parameters():  # DCGAN's N(0, 0.02) init would make every tiny sample ~0
        torch.nn.init.normal_(p, 0.0, 0.5)
    # Randomise batch-norm statistics so that eval-mode sampling is not trivially the identity on them
    for m in model.generator.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model.save_pretrained(tmp_path / "tiny", card="---\nlicense: mit\nlibrary_name: gancli\ntags:\n- gan\n---\n# tiny\n")


@pytest.fixture
def hf_cache(tmp_path, tiny_model_dir, monkeypatch):
    """An offline Hugging Face cache holding alice/tiny-gan at one commit, as huggingface_hub lays it out."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hf" / "models--alice--tiny-gan"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for f in tiny_model_dir.iterdir():
        shutil.copy(f, snapshot / f.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return {"repo": "alice/tiny-gan", "commit": commit, "snapshot": snapshot}


def make_image_folder(root: Path, n_per_class=12, size=28, classes=("a", "b"), mode="L") -> Path:
    rng = np.random.default_rng(0)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            arr = np.zeros((size, size), np.uint8)
            r = rng.integers(4, size // 2 - 2)
            y, x = np.ogrid[:size, :size]
            ring = np.abs(np.hypot(y - size / 2, x - size / 2) - r) < 2.0
            arr[ring] = 255 if c == 0 else 128
            img = Image.fromarray(arr)
            img.convert(mode).save(root / name / f"{i:03d}.png")
    return root


@pytest.fixture
def image_folder(tmp_path) -> Path:
    return make_image_folder(tmp_path / "images")


@pytest.fixture
def translator(tmp_path):
    """A random-weight horse<->zebra CycleGAN (one residual block, width 4) saved in zoo layout."""
    import torch

    torch.manual_seed(0)
    cfg = {"architecture": "cyclegan", "arch_args": {"g_width": 4, "d_width": 4, "n_blocks": 1},
           "image_size": 32, "channels": 3, "task": "translation", "domains": ["horse", "zebra"], "name": "tiny-h2z"}
    m = GANModel.from_config(cfg)
    for p in m.generator.parameters():
        torch.nn.init.normal_(p, 0.0, 0.3)
    return m.save_pretrained(tmp_path / "h2z", card="---\nlicense: mit\nlibrary_name: gancli\ntags:\n- gan\n---\n# t\n",
                             include_discriminator=False)


_REFERENCES = {}  # build_reference's results, for this test session


def _data_folder(real, dataset) -> str | None:
    """Where the real images are read from: two data roots (GAN_DATA) holding "mnist" are two references."""
    from gancli.data import datasets
    from gancli.data.reading import DataError

    if Path(real).expanduser().is_dir():
        return str(Path(real).expanduser().resolve())
    try:
        return str(datasets.find(dataset).resolve()) if dataset is not None else None
    except DataError:
        return None


def share_references(mp: pytest.MonkeyPatch):
    """Make ``gancli.evaluation.evaluate.build_reference`` remember its references for the rest of the session.

    Embedding the 10,000 MNIST test digits costs ~13 s of CPU, and several tests evaluate against the same set: each
    that uses this gets the same numbers as before (a reference is a function of its arguments;
    test_gan_eval_measures_a_zoo_model_deterministically checks a shared one against a fresh embedding), with the
    cost paid once. References with Inception features are not shared. Callers get a copy whose notes they may
    change; the tensors are shared and must only be read."""
    import dataclasses

    from gancli.evaluation import evaluate
    build = evaluate.build_reference

    def remembered(real, judge, dataset, n=None, seed=0, split="test", inception=None, size=None, **kwargs):
        if inception is not None:
            return build(real, judge, dataset, n, seed, split, inception, size, **kwargs)
        key = (str(real), _data_folder(real, dataset), judge.name, judge.source, str(judge.device),
               dataset.name if dataset else None, n, seed, split, size)
        if key not in _REFERENCES:
            _REFERENCES[key] = build(real, judge, dataset, n, seed, split, None, size, **kwargs)
        ref = _REFERENCES[key]
        return dataclasses.replace(ref, notes=list(ref.notes))

    mp.setattr(evaluate, "build_reference", remembered)


@pytest.fixture
def shared_references(monkeypatch):
    """``gancli.evaluation.evaluate.build_reference`` shared across the session (see share_references)."""
    share_references(monkeypatch)


def sigkill_after_checkpoint(proc, run: Path, step: int = 8, timeout: float = 120):
    """Kill a `gan train` process with SIGKILL once RUN holds a checkpoint of ``step`` or later; it must not have
    finished (no export/) by then."""
    import signal
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        done = [int(p.stem.split("-")[1]) for p in (run / "checkpoints").glob("step-*.pt")] \
            if (run / "checkpoints").is_dir() else []
        if done and max(done) >= step:
            break
        assert proc.poll() is None, "training ended before it could be killed"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert not (run / "export").exists(), "the run finished before the signal"
