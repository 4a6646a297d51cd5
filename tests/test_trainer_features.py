"""The trainer's deeper promises: losses, conditional models, EMA, NaN rollback, kill/resume, DDP, inputs, push."""
import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import pytest
import torch
from conftest import SHARED
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

import gancli
from gancli.cli import app
from gancli.data.reading import load_data
from gancli.families import losses
from gancli.training.trainer import Trainer, TrainError, TrainOptions

runner = CliRunner()


def options(data, out, **kw):
    base = dict(data=str(data), out=str(out), steps=6, batch_size=8, g_width=4, d_width=4, latent_dim=8,
                sample_every=3, checkpoint_every=3, log_every=2, device="cpu")
    return TrainOptions(**(base | kw))


def test_loss_formulas():
    real, fake = torch.tensor([2.0, 3.0]), torch.tensor([-2.0, -1.0])
    assert losses.d_loss("hinge", real, fake) == 0
    assert losses.d_loss("lsgan", torch.ones(3), torch.zeros(3)) == 0
    assert losses.d_loss("wgan-gp", real, fake) == pytest.approx(-4.0)
    # V(D,G) at D = 1/2 everywhere is -log 4; ns and minimax share the discriminator loss
    half = torch.zeros(4)
    assert losses.value(half, half) == pytest.approx(losses.OPTIMAL_VALUE)
    assert losses.g_loss("minimax", half) == pytest.approx(-torch.log(torch.tensor(2.0)).item())
    assert losses.g_loss("ns", half) == pytest.approx(torch.log(torch.tensor(2.0)).item())
    # rpgan pairs each real with a fake: only their differences count, and G's loss mirrors D's
    assert losses.d_loss("rpgan", real, fake) == pytest.approx(torch.nn.functional.softplus(fake - real).mean().item())
    assert losses.d_loss("rpgan", real + 5, fake + 5) == pytest.approx(losses.d_loss("rpgan", real, fake).item())
    assert losses.g_loss("rpgan", fake, real) == pytest.approx(losses.d_loss("rpgan", fake, real).item())
    with pytest.raises(ValueError, match="paired real"):
        losses.g_loss("rpgan", fake)
    # R1 / R2: the squared gradient norm; D(x) = 3 * sum(x) has |grad|^2 = 9 * pixels on every input
    x = torch.randn(2, 1, 4, 4)
    assert losses.zero_centred_penalty(lambda v, labels: 3 * v.sum((1, 2, 3)), x) == pytest.approx(9 * 16)


@pytest.mark.parametrize("loss", ["minimax", "lsgan", "wgan-gp", "hinge", "rpgan"])
def test_every_loss_trains(image_folder, tmp_path, loss):
    t = Trainer(options(image_folder, tmp_path / loss, loss=loss, steps=4, d_steps=2))
    t.run()
    rows = [json.loads(l) for l in (tmp_path / loss / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(torch.isfinite(torch.tensor(r["loss_d"])) for r in rows)
    assert ("value" in rows[0]) == (loss == "minimax")
    if loss in ("wgan-gp", "rpgan"):  # per-sample penalties: no batch statistics in D
        assert t.arch_args["d_norm"] == "layer"
    if loss == "rpgan":
        assert all(r["r1"] > 0 and r["r2"] > 0 for r in rows)
    card = (tmp_path / loss / "export" / "README.md").read_text()
    assert ("raw scores" in card) == (loss in ("wgan-gp", "hinge", "rpgan"))  # D(x) is no probability there


@pytest.mark.parametrize("arch", ["cyclegan", "stylegan"])
def test_families_with_their_own_loss_wiring_refuse_rpgan(image_folder, tmp_path, arch):
    r = runner.invoke(app, ["train", str(image_folder), "--arch", arch, "--loss", "rpgan", "--out",
                            str(tmp_path / "r"), "--steps", "1"])
    assert r.exit_code == 2 and r.output.startswith("error:"), r.output
    assert "is not wired here" in r.output or "use --loss ns, hinge" in r.output, r.output
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_conditional_dcgan_end_to_end(image_folder, tmp_path):
    run = tmp_path / "c"
    r = runner.invoke(app, ["train", str(image_folder), "--conditional", "--out", str(run), "--steps", "4",
                            "--batch-size", "8", "--g-width", "4", "--d-width", "4", "--latent-dim", "8",
                            "--device", "cpu"])
    assert r.exit_code == 0, r.output
    cfg = json.loads((run / "export" / "config.json").read_text())
    assert cfg["task"] == "conditional" and cfg["class_names"] == ["a", "b"] and cfg["arch_args"]["num_classes"] == 2
    assert "conditional" in (run / "export" / "README.md").read_text()
    m = gancli.load(run, device="cpu")
    a, b = m.sample(3, seed=1, label="a"), m.sample(3, seed=1, label="B")
    assert a.shape == (3, 1, 28, 28) and not torch.allclose(a, b)
    assert torch.allclose(m.sample(3, seed=1, label=1), b)

    r = runner.invoke(app, ["sample", str(run), "--per-class", "3", "--outdir", str(tmp_path / "aug")])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "aug").iterdir()) == ["a", "b"]
    assert len(list((tmp_path / "aug" / "b").glob("*.png"))) == 3
    r = runner.invoke(app, ["sample", str(run), "--label", "zebra", "-o", str(tmp_path / "x.png")])
    assert r.exit_code == 2 and "unknown class 'zebra'" in r.output
    r = runner.invoke(app, ["sample", str(run), "-n", "4", "-o", str(tmp_path / "g.png"), "--scale", "1"])
    assert r.exit_code == 0
    assert Image.open(tmp_path / "g.png").size == (2 * 30 + 2, 2 * 30 + 2)  # one column per class


def test_label_on_an_unconditional_model_is_refused(tiny_model_dir, tmp_path):
    r = runner.invoke(app, ["sample", str(tiny_model_dir), "--label", "3", "-o", str(tmp_path / "x.png")])
    assert r.exit_code == 2 and "not a conditional model" in r.output
    r = runner.invoke(app, ["sample", str(tiny_model_dir), "--per-class", "3", "--outdir", str(tmp_path / "o")])
    assert r.exit_code == 2 and "not a conditional model" in r.output


def test_conditional_needs_labels(tmp_path):
    from conftest import make_image_folder

    flat = make_image_folder(tmp_path / "flat", classes=("only",))
    for f in (flat / "only").iterdir():
        f.rename(flat / f.name)
    with pytest.raises(TrainError, match="labelled data"):
        Trainer(options(flat, tmp_path / "r", conditional=True))


def test_acgan_and_conditional_mlp_train(image_folder, tmp_path):
    t = Trainer(options(image_folder, tmp_path / "ac", arch="acgan", steps=4))
    t.run()
    row = json.loads((tmp_path / "ac" / "metrics.jsonl").read_text().splitlines()[-1])
    assert 0 <= row["class_acc_real"] <= 1
    assert gancli.load(tmp_path / "ac", device="cpu").sample(2, label="b").shape == (2, 1, 28, 28)
    t = Trainer(options(image_folder, tmp_path / "mlp", arch="mlp", conditional=True, g_width=None, d_width=None))
    t.run()
    assert gancli.load(tmp_path / "mlp", device="cpu").is_conditional


def test_ema_generator_is_exported(image_folder, tmp_path):
    t = Trainer(options(image_folder, tmp_path / "e", ema=True, ema_decay=0.9))
    t.run()
    exported = load_file(tmp_path / "e" / "export" / "model.safetensors")
    w = "net.0.weight"
    assert torch.equal(exported[f"generator.{w}"], t.G_ema.state_dict()[w])
    assert not torch.equal(exported[f"generator.{w}"], t.G.state_dict()[w])
    assert json.loads((tmp_path / "e" / "export" / "config.json").read_text())["training"]["ema"] == 0.9


def test_non_finite_loss_rolls_back_and_lowers_the_lr(image_folder, tmp_path, monkeypatch):
    original = Trainer.train_step
    poisoned = {"left": 1}

    def flaky(self):
        stats = original(self)
        if self.step == 3 and poisoned["left"]:
            poisoned["left"] -= 1
            stats["loss_d"] = torch.tensor(float("nan"))
        return stats

    monkeypatch.setattr(Trainer, "train_step", flaky)
    t = Trainer(options(image_folder, tmp_path / "n", steps=8, checkpoint_every=2))
    t.run()
    assert t.step == 8 and t.rollbacks == [4] and t.lr_scale == 0.5
    log = (tmp_path / "n" / "log.txt").read_text()
    assert "non-finite loss at step 4: rolled back to step-00000002.pt" in log
    rows = [json.loads(l) for l in (tmp_path / "n" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["lr_g"] == pytest.approx(1e-4)


def test_repeated_divergence_stops_with_a_clear_message(image_folder, tmp_path, monkeypatch):
    original = Trainer.train_step

    def always_nan(self):
        stats = original(self)
        stats["loss_g"] = torch.tensor(float("inf"))
        return stats

    monkeypatch.setattr(Trainer, "train_step", always_nan)
    with pytest.raises(TrainError, match="diverged"):
        Trainer(options(image_folder, tmp_path / "n")).run()


TRAIN = ["--arch", "dcgan", "--batch-size", "8", "--g-width", "4", "--d-width", "4", "--latent-dim", "8",
         "--device", "cpu", "--log-every", "1", "--sample-every", "1000"]


def _train_cmd(data, out, steps, *extra):
    return [sys.executable, "-m", "gancli", "train", str(data), "--out", str(out), "--steps", str(steps), *TRAIN,
            *extra]


def _weights(run):
    return load_file(run / "export" / "model.safetensors")


def _wait_for_checkpoint(run, at_least, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        steps = [int(p.stem.split("-")[1]) for p in (run / "checkpoints").glob("step-*.pt")] \
            if (run / "checkpoints").is_dir() else []
        if steps and max(steps) >= at_least:
            return max(steps)
        assert proc.poll() is None, "training ended before it could be interrupted"
        time.sleep(0.05)
    raise AssertionError("no checkpoint appeared")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_interrupted_and_resumed_run_matches_an_uninterrupted_one(image_folder, tmp_path, sig):
    steps = 60
    straight = runner.invoke(app, _train_cmd(image_folder, tmp_path / "straight", steps, "--checkpoint-every", "1")[3:])
    assert straight.exit_code == 0, straight.output  # in this process (2 s less); the cut run is a real process
    run = tmp_path / "cut"
    proc = subprocess.Popen(_train_cmd(image_folder, run, steps, "--checkpoint-every", "1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_checkpoint(run, 10, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and "checkpoint saved" in err and "Traceback" not in err
    else:
        assert proc.returncode == -signal.SIGKILL
    assert not (run / "export").exists(), "the run finished before the signal"
    resumed = runner.invoke(app, _train_cmd(image_folder, run, steps, "--checkpoint-every", "1", "--resume")[3:])
    assert resumed.exit_code == 0, resumed.output  # in this process: the cut run was the real process
    assert "resuming at step" in resumed.output
    a, b = _weights(tmp_path / "straight"), _weights(run)
    assert all(torch.equal(a[k], b[k]) for k in a)
    metrics = [json.loads(l)["step"] for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert metrics == list(range(1, steps + 1))


def test_torchrun_two_cpu_processes(image_folder, tmp_path):
    run = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                        "--standalone", "-m", "gancli", "train", str(image_folder), "--out", str(run),
                        "--steps", "4", *TRAIN], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-8000:]
    opts = json.loads((run / "options.json").read_text())
    assert opts["processes"] == 2
    log = (run / "log.txt").read_text()
    assert log.count("start:") == 1 and "x2" in log
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]  # one writer
    assert gancli.load(run, device="cpu").sample(2).shape == (2, 1, 28, 28)


def test_zip_input_matches_the_folder(image_folder, tmp_path):
    archive = tmp_path / "images.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in sorted(image_folder.rglob("*.png")):
            z.write(f, f"images/{f.relative_to(image_folder)}")
    a, b = load_data(image_folder), load_data(archive)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels) and a.class_names == b.class_names


@pytest.mark.skipif(not (SHARED / "fashion-mnist").is_dir(), reason="needs ../shared/data/fashion-mnist")
def test_fashion_mnist_class_names_come_from_the_files():
    data = load_data(SHARED / "fashion-mnist")
    assert len(data) == 60000 and data.class_names[7] == "Sneaker" and data.class_names[9] == "Ankle boot"


def test_mirror_and_random_crop_are_deterministic(image_folder, tmp_path):
    t = Trainer(options(image_folder, tmp_path / "aug", size=32, random_crop=True, mirror=True))
    x1, _ = t.objective.batch(5)
    x2, _ = t.objective.batch(5)
    assert x1.shape == (8, 1, 32, 32) and torch.equal(x1, x2)
    assert t.images[0].shape[-1] == 36  # loaded 12.5% larger, cropped per batch
    assert not torch.equal(t.objective.batch(6)[0], x1)


def test_push_dry_run_and_upload_calls(tiny_model_dir, monkeypatch):
    r = runner.invoke(app, ["push", str(tiny_model_dir), "--repo", "alice/tiny", "--dry-run"])
    assert r.exit_code == 0 and "model.safetensors" in r.output and "nothing was uploaded" in r.output

    calls = []

    class FakeApi:
        def __init__(self, **kw):
            calls.append(("init", kw))

        def create_repo(self, repo_id, **kw):
            calls.append(("create_repo", repo_id, kw))

        def create_branch(self, repo_id, **kw):
            calls.append(("create_branch", repo_id, kw))

        def upload_folder(self, **kw):
            calls.append(("upload_folder", kw))
            return type("Info", (), {"commit_url": "https://hub/alice/tiny/commit/1"})()

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    r = runner.invoke(app, ["push", str(tiny_model_dir), "--repo", "alice/tiny", "--private", "--revision", "v1"])
    assert r.exit_code == 0, r.output
    names = [c[0] for c in calls]
    assert names == ["init", "create_repo", "create_branch", "upload_folder"]
    assert calls[1][2]["private"] is True
    upload = calls[3][1]
    assert upload["repo_id"] == "alice/tiny" and upload["revision"] == "v1"
    assert set(upload["allow_patterns"]) == {"config.json", "README.md", "model.safetensors"}


def test_push_refuses_bad_input(tiny_model_dir, tmp_path, monkeypatch):
    (tiny_model_dir / "README.md").write_text("# no metadata\n")
    r = runner.invoke(app, ["push", str(tiny_model_dir), "--repo", "alice/tiny", "--dry-run"])
    assert r.exit_code == 2 and "YAML metadata" in r.output
    r = runner.invoke(app, ["push", str(tiny_model_dir), "--repo", "not-a-repo", "--dry-run"])
    assert r.exit_code == 2 and "owner/name" in r.output
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tiny_model_dir / "README.md").write_text("---\nlicense: mit\nlibrary_name: gancli\ntags:\n- gan\n---\n")
    r = runner.invoke(app, ["push", str(tiny_model_dir), "--repo", "alice/tiny"])
    assert r.exit_code == 2 and "HF_HUB_OFFLINE" in r.output
