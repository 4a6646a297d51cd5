"""`gan eval`'s cache of the real images' features, its progress phases and its wall time."""
import json
import shutil
import time

import pytest
import torch
from conftest import make_image_folder, tiny_config
from PIL import Image
from typer.testing import CliRunner

from gancli.cli import app
from gancli.evaluation import evaluate as ev
from gancli.store import hub
from gancli.use.model import GANModel

runner = CliRunner()
CARD = "---\nlicense: mit\nlibrary_name: gancli\ntags:\n- gan\n---\n# other\n"


@pytest.fixture
def digits(tmp_path):
    """12 real images of two digit classes the MNIST judge knows."""
    return make_image_folder(tmp_path / "digits", n_per_class=6, classes=("0", "1"))


@pytest.fixture
def other_model(tmp_path):
    torch.manual_seed(1)
    model = GANModel.from_config(tiny_config("mlp"))
    return model.save_pretrained(tmp_path / "other", card=CARD)


@pytest.fixture
def embeddings(monkeypatch):
    """How many times the real images were embedded (the work the cache saves)."""
    calls = []
    real = ev._embed_reference

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(ev, "_embed_reference", counted)
    return calls


def measure(model, real, **kwargs):
    phases = []
    result = ev.evaluate(str(model), str(real), n=8, device="cpu",
                         progress=lambda what, done, total: phases.append(what) if what not in phases else None,
                         **kwargs)
    return {k: v for k, v in result.items() if k != "seconds"}, phases


def entries(cache):
    return sorted((cache / "references").glob("*.safetensors")) if (cache / "references").is_dir() else []


def test_second_eval_of_another_model_reuses_the_real_features(tiny_model_dir, other_model, digits, embeddings,
                                                                gan_cache):
    first, phases = measure(tiny_model_dir, digits)
    assert len(embeddings) == 1 and len(entries(gan_cache)) == 1
    assert phases == ["loading the model", "loading the judge", "loading the real images",
                      "embedding the real images", "sampling", "distances (KID, FID, precision/recall)"]
    cached, phases = measure(other_model, digits)
    assert len(embeddings) == 1  # not embedded again
    assert "real features from cache" in phases and "embedding the real images" not in phases
    fresh, _ = measure(other_model, digits, cache=False)
    assert len(embeddings) == 2 and cached == fresh  # the same numbers, to the last digit
    key = json.loads(entries(gan_cache)[0].with_suffix(".json").read_text())
    assert key["judge"] == "classifier-mnist" and key["data"] == str(digits.resolve()) and len(key["files"]) == 64
    again, _ = measure(tiny_model_dir, digits)
    assert again == first and len(embeddings) == 2


def test_changed_data_or_judge_weights_miss_the_cache(tiny_model_dir, digits, embeddings, tmp_path, gan_cache):
    from safetensors.torch import load_file, save_file

    measure(tiny_model_dir, digits)
    one = digits / "1" / "000.png"
    Image.new("L", (28, 28), 200).save(one)  # a data file changed
    measure(tiny_model_dir, digits)
    assert len(embeddings) == 2
    judge = tmp_path / "judge"
    shutil.copytree(hub.resolve("classifier-mnist").path, judge)
    measure(tiny_model_dir, digits, features=str(judge))  # the zoo judge's name and weights, in another folder:
    assert len(embeddings) == 2                            # the same features
    weights = load_file(judge / "model.safetensors")
    name = sorted(weights)[0]
    weights[name] = weights[name] + 0.01
    save_file(weights, judge / "model.safetensors")
    config = json.loads((judge / "config.json").read_text())
    config["files"]["model.safetensors"] = {"sha256": hub.sha256_file(judge / "model.safetensors"),
                                            "bytes": (judge / "model.safetensors").stat().st_size}
    (judge / "config.json").write_text(json.dumps(config))
    measure(tiny_model_dir, digits, features=str(judge))
    assert len(embeddings) == 3  # new weights, new features
    del config["files"]  # a judge whose config records no checksums: its weights are hashed as loaded
    (judge / "config.json").write_text(json.dumps(config))
    measure(tiny_model_dir, digits, features=str(judge))
    weights[name] = weights[name] + 0.01
    save_file(weights, judge / "model.safetensors")
    measure(tiny_model_dir, digits, features=str(judge))
    assert len(embeddings) == 5


@pytest.mark.parametrize("damage", ["truncated", "garbage", "other shapes", "a flipped byte"])
def test_a_damaged_cache_file_is_rebuilt(tiny_model_dir, digits, embeddings, gan_cache, damage):
    from safetensors import safe_open
    from safetensors.torch import save_file

    first, _ = measure(tiny_model_dir, digits)
    [entry] = entries(gan_cache)
    if damage == "truncated":
        entry.write_bytes(entry.read_bytes()[:-100])
    elif damage == "garbage":
        entry.write_bytes(b"\xff" * 64)
    elif damage == "a flipped byte":  # in the last tensor's data: the header still reads
        blob = bytearray(entry.read_bytes())
        blob[-3] ^= 0x40
        entry.write_bytes(bytes(blob))
    else:  # the right key in the metadata, tensors of other sizes: never trusted blindly
        with safe_open(str(entry), "pt") as f:
            meta = f.metadata()
        save_file({"features": torch.zeros(3, 128), "labels": torch.zeros(3, dtype=torch.long),
                   "confidence": torch.zeros(3), "sharpness": torch.zeros(1)}, entry, metadata=meta)
    again, _ = measure(tiny_model_dir, digits)
    assert again == first and len(embeddings) == 2
    measure(tiny_model_dir, digits)  # the rebuilt entry is whole again
    assert len(embeddings) == 2


def test_no_cache_neither_reads_nor_writes_it(tiny_model_dir, digits, embeddings, gan_cache, tmp_path):
    args = ["eval", str(tiny_model_dir), "--real", str(digits), "-n", "8", "--device", "cpu"]
    r = runner.invoke(app, args + ["--no-cache", "--json", str(tmp_path / "a.json")])
    assert r.exit_code == 0, r.output
    assert entries(gan_cache) == [] and len(embeddings) == 1
    r = runner.invoke(app, args)
    assert r.exit_code == 0 and len(entries(gan_cache)) == 1 and len(embeddings) == 2
    r = runner.invoke(app, args + ["--no-cache"])
    assert r.exit_code == 0 and len(embeddings) == 3
    assert "--no-cache" not in json.loads((tmp_path / "a.json").read_text())["command"]  # it changes no number


def test_seconds_are_the_whole_evaluation(tiny_model_dir, digits, monkeypatch):
    """Loading the judge and the real images counts: the time before sampling was left out."""
    load = ev.load_judge

    def slow(*args, **kwargs):
        time.sleep(0.5)
        return load(*args, **kwargs)

    monkeypatch.setattr(ev, "load_judge", slow)
    t0 = time.monotonic()
    result = ev.evaluate(str(tiny_model_dir), str(digits), n=8, device="cpu", started=t0)
    took = time.monotonic() - t0
    assert result["seconds"] >= took >= 0.5
    assert ev.evaluate(str(tiny_model_dir), str(digits), n=8, device="cpu")["seconds"] >= 0.5


def test_translation_progress_and_seconds(translator, tmp_path, monkeypatch):
    for split, colour in (("testA", (140, 90, 40)), ("testB", (240, 240, 240))):
        (tmp_path / "pairs" / split).mkdir(parents=True)
        for i in range(4):  # precision/recall's k = 3 needs 4
            Image.new("RGB", (32, 32), tuple(c - 10 * i for c in colour)).save(tmp_path / "pairs" / split / f"{i}.png")
    load = ev.load_judge
    monkeypatch.setattr(ev, "load_judge", lambda *a, **k: (time.sleep(0.5), load(*a, **k))[1])
    phases = []
    result = ev.evaluate(str(translator), str(tmp_path / "pairs"), device="cpu",
                         progress=lambda what, done, total: phases.append(what) if what not in phases else None)
    assert phases == ["loading the model", "loading the judge", "loading the real images", "-> zebra",
                      "judging the outputs", "distances (KID, FID, precision/recall)"]
    assert result["seconds"] >= 0.5
