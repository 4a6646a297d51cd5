import shutil

import pytest

import gancli
from gancli.errors import UnknownNameError
from gancli.store import hub


def test_bundled_zoo_entry_resolves():
    assert "dcgan-mnist" in hub.zoo_names()
    r = hub.resolve("dcgan-mnist")
    assert r.source == "bundled" and (r.path / "model.safetensors").is_file()


def test_local_folder_wins_over_zoo_name(tiny_model_dir, tmp_path, monkeypatch):
    shutil.copytree(tiny_model_dir, tmp_path / "work" / "dcgan-mnist")
    monkeypatch.chdir(tmp_path / "work")
    r = hub.resolve("dcgan-mnist")
    assert r.source == "local"
    assert gancli.load("dcgan-mnist", device="cpu").latent_dim == 8  # the tiny model, not the zoo's


def test_run_directory_resolves_to_its_export(tiny_model_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_model_dir, run / "export")
    assert hub.resolve(str(run)).path == run / "export"


def test_folder_without_config_is_explained(tmp_path):
    with pytest.raises(hub.ModelNotFoundError, match="no config.json"):
        hub.resolve(str(tmp_path))


def test_hub_repo_from_offline_cache(hf_cache):
    r = hub.resolve(hf_cache["repo"])
    assert r.source == "hub" and r.path == hf_cache["snapshot"]
    m = gancli.load(hf_cache["repo"], device="cpu")
    assert m.sample(2, seed=0).shape == (2, 1, 28, 28)


def test_hub_revision_pin(hf_cache):
    r = hub.resolve(f"{hf_cache['repo']}@{hf_cache['commit']}")
    assert r.revision == hf_cache["commit"] and r.path == hf_cache["snapshot"]


def test_offline_and_not_cached_says_so(hf_cache):
    with pytest.raises(hub.HubError, match="HF_HUB_OFFLINE"):
        hub.resolve("alice/never-downloaded")
    with pytest.raises(hub.HubError, match="not in the local Hugging Face cache"):
        hub.resolve(f"{hf_cache['repo']}@v9")


def test_zoo_entry_with_weights_on_the_hub(hf_cache, tmp_path, monkeypatch, tiny_model_dir):
    """A zoo entry that ships only config + card fetches its weights from the Hub repo it names."""
    import json

    zoo = tmp_path / "zoo"
    entry = zoo / "tiny-remote"
    entry.mkdir(parents=True)
    cfg = json.loads((tiny_model_dir / "config.json").read_text()) | {"hub": {"repo": hf_cache["repo"]}}
    (entry / "config.json").write_text(json.dumps(cfg))
    monkeypatch.setattr(hub, "zoo_dir", lambda: zoo)
    assert hub.weights_location("tiny-remote") == "cached"
    r = hub.resolve("tiny-remote")
    assert r.source == "hub" and r.path == hf_cache["snapshot"]
    shutil.rmtree(tmp_path / "hf")
    assert hub.weights_location("tiny-remote") == "hub"


def test_unknown_name_suggests_close_zoo_names():
    with pytest.raises(UnknownNameError) as e:
        hub.resolve("dcgan-mnst")
    assert "dcgan-mnist" in str(e.value)
    with pytest.raises(UnknownNameError, match="dcgan-mnist"):
        hub.resolve("mnist")
