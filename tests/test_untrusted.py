"""Untrusted input: a zip of training images, and a model folder (from the Hub or anywhere). Whatever it holds, the
user gets one `error:` line (exit 2) or the bad part skipped and counted, never a traceback, a stall, a huge
allocation or a file read from outside the folder."""
import io
import json
import subprocess
import sys
import tracemalloc
import zipfile

import numpy as np
import pytest
from PIL import Image

from gancli.data import reading as data_module
from gancli.data.reading import load_data
from gancli.families import catalog


def _png(value: int, size: int = 28, text: bytes = b"") -> bytes:
    buf = io.BytesIO()
    info = None
    if text:
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        info.add_text("comment", text.decode())
    Image.fromarray(np.full((size, size), value, np.uint8)).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def _zip(path, entries: dict[str, bytes], compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, payload in entries.items():
            z.writestr(name, payload)
    return path


# ------------------------------------------------------------------------------------------------ training zips
def _flip_central_flag(path, name: str, bit: int):
    """Set a general-purpose flag bit of one entry in the zip's central directory (zipfile cannot write encrypted
    entries; the flag is what readers go by)."""
    raw = bytearray(path.read_bytes())
    at = raw.index(b"PK\x01\x02")  # the central directory's first entry
    while True:
        name_len = int.from_bytes(raw[at + 28:at + 30], "little")
        extra_len = int.from_bytes(raw[at + 30:at + 32], "little")
        comment_len = int.from_bytes(raw[at + 32:at + 34], "little")
        if raw[at + 46:at + 46 + name_len] == name.encode():
            raw[at + 8] |= bit
            break
        at += 46 + name_len + extra_len + comment_len
    path.write_bytes(raw)


def test_zip_with_a_corrupt_and_an_encrypted_entry_trains_on_the_rest(tmp_path):
    archive = _zip(tmp_path / "d.zip", {f"ok{i}.png": _png(20 * i) for i in range(4)}
                   | {"bad.png": _png(200), "secret.png": _png(100)})
    raw = bytearray(archive.read_bytes())
    raw[raw.index(b"IDAT", raw.index(b"bad.png")) + 6] ^= 0xFF  # one flipped byte: the entry's CRC no longer matches
    archive.write_bytes(raw)
    _flip_central_flag(archive, "secret.png", 0x1)

    loaded = load_data(archive)
    assert len(loaded) == 4
    reasons = dict(loaded.skipped)
    assert "CRC" in reasons["bad.png"] and "encrypted" in reasons["secret.png"]

    from typer.testing import CliRunner

    from gancli.cli import app

    r = CliRunner().invoke(app, ["train", str(archive), "--arch", "dcgan", "--steps", "1", "--batch-size", "4",
                                 "--g-width", "4", "--d-width", "4", "--latent-dim", "8", "--device", "cpu",
                                 "--out", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output[-2000:]
    assert "skipped 2 file(s)" in r.output
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "bad.png" in log and "secret.png" in log


def test_absolute_and_parent_paths_in_a_zip_are_skipped_not_read(tmp_path):
    archive = _zip(tmp_path / "d.zip", {"a.png": _png(10), "b.png": _png(30), "/etc/x.png": _png(250),
                                         "../up.png": _png(250), "C:/win.png": _png(250)})
    loaded = load_data(archive)
    assert len(loaded) == 2 and int(loaded.images.max()) < 250
    assert sorted(name for name, _ in loaded.skipped) == ["../up.png", "/etc/x.png", "C:/win.png"]


def test_zip_bomb_is_refused_before_it_is_inflated(tmp_path):
    """64 MiB of zeros named .png deflate to 64 KiB; reading it whole took the uncompressed size (twice)."""
    archive = _zip(tmp_path / "bomb.zip", {"a.png": _png(10), "b.png": _png(30), "bomb.png": bytes(64 << 20)},
                   zipfile.ZIP_DEFLATED)
    assert archive.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        loaded = load_data(archive)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(loaded) == 2 and [n for n, _ in loaded.skipped] == ["bomb.png"]
    assert peak < 16 << 20, f"peak {peak / 2**20:.0f} MiB"


def test_zip_entry_declaring_more_bytes_than_the_pixel_limit_allows_is_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(data_module, "MAX_PIXELS", 64 * 64)  # 16 KiB for an entry: a 28x28 PNG needs ~100 bytes
    archive = _zip(tmp_path / "d.zip", {"a.png": _png(10), "padded.png": _png(30, text=b"x" * (64 << 10))})
    loaded = load_data(archive)
    assert len(loaded) == 1
    assert [n for n, _ in loaded.skipped] == ["padded.png"] and "declares" in loaded.skipped[0][1]


# ------------------------------------------------------------------------------------------------ model folders
def _edit_config(folder, change):
    path = folder / "config.json"
    config = json.loads(path.read_text())
    change(config)
    path.write_text(json.dumps(config))
    return folder


def _limited_memory():
    """Run a child within 2 GiB of address space: a config that makes it allocate more fails at once, not after
    eating the machine (torch itself takes ~0.7 GiB)."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def _sample_refused(folder, tmp_path, *expected: str) -> str:
    """`gan sample FOLDER` fails with one `error:` line naming ``expected``, exit 2, and writes no grid."""
    from typer.testing import CliRunner

    from gancli.cli import app

    out = tmp_path / "grid.png"
    r = CliRunner().invoke(app, ["sample", str(folder), "-n", "4", "-o", str(out), "--device", "cpu"])
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 2, r.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in r.stderr, r.stderr[-3000:]
    for text in expected:
        assert text in lines[0], lines[0]
    assert not out.exists()
    return lines[0]


def _set(config, path: str, value):
    *parents, last = path.split(".")
    for p in parents:
        config = config[p]
    config[last] = value


@pytest.mark.parametrize("path, value, expected", [
    ("arch_args", "latent_dim=8", "arch_args must be a JSON object"),
    ("files", ["model.safetensors"], "files must map"),
    ("image_size", 0, "image_size is 0"),
    ("channels", "1", "channels must be a whole number"),
    ("arch_args.g_width", -4, "g_width is -4"),
    ("arch_args.g_width", 4.5, "g_width must be a whole number"),
    ("arch_args.d_norm", ["batch"], "d_norm must be a short string"),
    ("arch_args.widths", [4, 8], "unknown argument(s) widths"),
    ("latent_dim", 9, "latent_dim is 9 but arch_args.latent_dim is 8"),
])
def test_malformed_config_is_one_line_error(tiny_model_dir, tmp_path, path, value, expected):
    _edit_config(tiny_model_dir, lambda c: _set(c, path, value))
    _sample_refused(tiny_model_dir, tmp_path, expected)


def test_config_that_is_a_list_is_one_line_error(tiny_model_dir, tmp_path):
    (tiny_model_dir / "config.json").write_text("[1, 2, 3]")
    _sample_refused(tiny_model_dir, tmp_path, "must hold a JSON object")
    (tiny_model_dir / "config.json").write_text("[" * 100_000)  # deeper than json.loads can recurse
    _sample_refused(tiny_model_dir, tmp_path, "nested too deeply")


HUGE = {  # arch_args changes -> what the refusal says
    "latent": ({"latent_dim": 10 ** 6}, "latent_dim is 1000000"),  # took 6.4 GB and 78 s before failing
    "width": ({"max_width": 10 ** 9}, "max_width is 1000000000"),  # asked for terabytes
    "params": ({"latent_dim": 8192, "g_width": 8192, "max_width": 8192}, "parameters"),
    "files": ({"latent_dim": 4096, "g_width": 2048, "max_width": 2048}, "shape mismatch"),  # within limits: 2 GB
}

_LOAD_EACH = """
import json, sys, time
import gancli
for folder in sys.argv[1:]:
    t0 = time.time()
    try:
        gancli.load(folder, device="cpu")
        outcome = "loaded"
    except Exception as e:
        outcome = f"{type(e).__name__}: {e}"
    print(json.dumps([outcome, time.time() - t0, "torch._dynamo" in sys.modules]), flush=True)
"""


def test_huge_architectures_are_refused_before_anything_is_allocated(tiny_model_dir, translator, tmp_path):
    """Each in a child with 2 GiB of address space: before the checks, these configs allocated gigabytes (or built
    8192 residual blocks for a minute) before failing, if they failed at all."""
    import shutil

    folders, expected = [tiny_model_dir], ["loaded"]
    for name, (args, message) in HUGE.items():
        folder = shutil.copytree(tiny_model_dir, tmp_path / name)

        def change(config, args=args):
            config["arch_args"] |= args
            config["latent_dim"] = config["arch_args"]["latent_dim"]

        folders.append(_edit_config(folder, change))
        expected.append(message)
    folders.append(_edit_config(translator, lambda c: _set(c, "arch_args.n_blocks", 8192)))
    expected.append("layers")
    r = subprocess.run([sys.executable, "-c", _LOAD_EACH, *map(str, folders)], capture_output=True, text=True,
                       preexec_fn=_limited_memory, timeout=300)
    results = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(results) == len(folders), r.stderr[-3000:]
    (first, _, dynamo), *refused = results
    assert first == "loaded"
    assert not dynamo, "a meta-device build imported torch._dynamo: 3 s more for every load"
    for (outcome, seconds, _), message in zip(refused, expected[1:]):
        assert outcome.startswith("WeightsError") and message in outcome, outcome
        assert seconds < 5, (outcome, seconds)


@pytest.mark.parametrize("arch", sorted(catalog.all_families()))
def test_every_family_builds_the_same_shapes_on_the_meta_device(arch):
    """Sizes are judged on the meta device, before anything is allocated: it must build what the real build does."""
    from gancli.store.weights import build_on_meta

    small = {"dcgan": {"g_width": 4, "d_width": 4}, "acgan": {"num_classes": 3, "g_width": 4, "d_width": 4},
             "ssgan": {"ssgan_classes": 3, "g_width": 4, "d_width": 4}, "design": {"design_classes": 3},
             "mlp": {"g_hidden": [8], "d_hidden": [8], "num_classes": 2}, "cyclegan": {"g_width": 4, "d_width": 4,
                                                                                     "n_blocks": 2},
             "discogan": {"g_width": 4, "d_width": 4, "image_size": 32},
             "stackgan": {"vocab_size": 5, "text_classes": 2, "g_width": 4, "d_width": 4}}.get(arch, {})
    build = catalog.get(arch).build
    meta, real = build_on_meta(build, small, "test"), build(**small)
    assert {n: {k: (tuple(v.shape), v.dtype) for k, v in net.state_dict().items()} for n, net in meta.items()} == \
        {n: {k: (tuple(v.shape), v.dtype) for k, v in net.state_dict().items()} for n, net in real.items()}
    assert all(v.is_meta for net in meta.values() for v in net.state_dict().values())


def test_negative_image_size_is_refused(tiny_model_dir, tmp_path):
    _edit_config(tiny_model_dir, lambda c: _set(c, "image_size", -28))
    _sample_refused(tiny_model_dir, tmp_path, "image_size is -28")


def _resave(folder, change_state, keep_checksums=False):
    """Rewrite model.safetensors with changed tensors; drop the recorded checksums (a hostile folder records its
    own)."""
    from safetensors.torch import load_file, save_file

    state = load_file(folder / "model.safetensors")
    change_state(state)
    save_file(state, folder / "model.safetensors")
    if not keep_checksums:
        _edit_config(folder, lambda c: c.pop("files"))


def _first_conv(state):
    return next(k for k in state if k.startswith("generator.") and k.endswith("weight") and state[k].dim() == 4)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_not_drawn(tiny_model_dir, tmp_path, bad):
    def poison(state):
        state[_first_conv(state)][0, 0, 0, 0] = bad

    _resave(tiny_model_dir, poison)
    line = _sample_refused(tiny_model_dir, tmp_path, "NaN or infinite")
    assert "generator." in line


def test_int8_weights_are_refused_not_cast(tiny_model_dir, tmp_path):
    import torch

    def quantise(state):
        key = _first_conv(state)
        state[key] = (state[key] * 100).clamp(-127, 127).to(torch.int8)

    _resave(tiny_model_dir, quantise)
    _sample_refused(tiny_model_dir, tmp_path, "wrong type", "int8")


def test_shard_index_cannot_reach_outside_the_folder(tiny_model_dir, tmp_path):
    """The index names ../other/model.safetensors: a file outside the model folder must never be read."""
    import shutil

    other = tmp_path / "other"
    shutil.copytree(tiny_model_dir, other)
    victim = tmp_path / "m"
    victim.mkdir()
    shutil.copy(tiny_model_dir / "config.json", victim / "config.json")
    from safetensors.torch import load_file

    keys = load_file(other / "model.safetensors")
    (victim / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {k: "../other/model.safetensors" for k in keys}}))
    _sample_refused(victim, tmp_path, "in the model folder itself")
    import gancli
    from gancli.store.weights import WeightsError

    with pytest.raises(WeightsError, match="folder itself"):
        gancli.load(victim, device="cpu")


def test_weights_file_missing_from_recorded_checksums_is_refused(tiny_model_dir, tmp_path):
    """config.json records checksums, but the index brings in a file it does not cover."""
    import shutil

    from safetensors.torch import load_file

    shutil.copy(tiny_model_dir / "model.safetensors", tiny_model_dir / "extra.safetensors")
    keys = load_file(tiny_model_dir / "extra.safetensors")
    (tiny_model_dir / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {k: "extra.safetensors" for k in keys}}))
    _sample_refused(tiny_model_dir, tmp_path, "not among the files config.json records checksums for")


def test_judge_config_is_checked_too(tmp_path):
    import shutil

    from gancli.quality.judges import load_judge
    from gancli.store import hub
    from gancli.store.weights import WeightsError

    judge = tmp_path / "judge"
    shutil.copytree(hub.zoo_dir() / "classifier-mnist", judge)
    _edit_config(judge, lambda c: _set(c, "arch_args", "num_classes=10"))
    with pytest.raises(WeightsError, match="arch_args must be a JSON object"):
        load_judge(judge)


# ------------------------------------------------------------------------------------------------ checksums
def test_exports_are_byte_for_byte_reproducible(tiny_model_dir, tmp_path):
    """safetensors writes its metadata in hash-map order, which changes from one save to the next."""
    import gancli

    model = gancli.load(tiny_model_dir, device="cpu")
    blobs = set()
    for i in range(8):
        folder = model.save_pretrained(tmp_path / f"copy{i}")
        blobs.add((folder / "model.safetensors").read_bytes())
    assert len(blobs) == 1
    reloaded = gancli.load(tmp_path / "copy0", device="cpu")
    assert (reloaded.sample(2, seed=1) == model.sample(2, seed=1)).all()


def test_zoo_entry_pins_the_hub_config_by_sha256(hf_cache, tmp_path, monkeypatch, tiny_model_dir):
    """A zoo entry's weights on the Hub: config.json (which records the weights' sha256s) must be the one pinned."""
    import gancli
    from gancli.store import hub
    zoo = tmp_path / "zoo"
    for name, pin in (("pinned", hub.sha256_file(tiny_model_dir / "config.json")), ("tampered", "0" * 64)):
        (zoo / name).mkdir(parents=True)
        cfg = json.loads((tiny_model_dir / "config.json").read_text())
        cfg["hub"] = {"repo": hf_cache["repo"], "revision": hf_cache["commit"], "config_sha256": pin}
        (zoo / name / "config.json").write_text(json.dumps(cfg))
    monkeypatch.setattr(hub, "zoo_dir", lambda: zoo)
    assert gancli.load("pinned", device="cpu").sample(1).shape == (1, 1, 28, 28)
    with pytest.raises(hub.HubError, match="pins"):
        gancli.load("tampered", device="cpu")
