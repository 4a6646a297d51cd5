"""CycleGAN: reference-compatible generators, gan translate on any input, unpaired training, weight import."""
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from tiny_families import interrupt_at
from torch import nn
from typer.testing import CliRunner

import gancli
from gancli.cli import app
from gancli.data.imageio import captioned
from gancli.families.cyclegan import ResnetGenerator
from gancli.training.trainer import Trainer, TrainOptions
from gancli.use.model import GANModel, WeightsError

runner = CliRunner()
CARD = "---\nlicense: mit\nlibrary_name: gancli\ntags:\n- gan\n---\n# t\n"


def picture(path, w, h, mode="RGB", seed=0):
    arr = (np.random.default_rng(seed).random((h, w, 4)) * 255).astype(np.uint8)
    img = Image.fromarray(arr, "RGBA").convert(mode)
    img.save(path)
    return path


def test_generator_keeps_the_reference_parameter_names():
    keys = list(ResnetGenerator(3, 64, 9).state_dict())
    assert keys[0] == "model.1.weight" and keys[-1] == "model.26.bias" and len(keys) == 48
    assert {"model.10.conv_block.1.weight", "model.18.conv_block.5.bias", "model.19.weight", "model.22.bias"} <= set(keys)
    assert sum(p.numel() for p in ResnetGenerator(3, 64, 9).parameters()) == 11_378_179


def test_translate_any_size_and_mode(translator, tmp_path):
    for w, h, mode in ((37, 53, "RGB"), (64, 64, "L"), (30, 18, "RGBA")):
        src = picture(tmp_path / f"in-{w}x{h}.png", w, h, mode)
        r = runner.invoke(app, ["translate", str(translator), str(src)])
        assert r.exit_code == 0, r.output
        out = Image.open(tmp_path / f"in-{w}x{h}-zebra.png")
        assert out.size == (w, h) and out.mode == "RGB"


def test_translate_directions_and_side_by_side(translator, tmp_path):
    src = picture(tmp_path / "a.png", 40, 24)
    a2b, b2a = tmp_path / "a2b.png", tmp_path / "b2a.png"
    assert runner.invoke(app, ["translate", str(translator), str(src), "-o", str(a2b)]).exit_code == 0
    assert runner.invoke(app, ["translate", str(translator), str(src), "-o", str(b2a), "--direction", "horse"]).exit_code == 0
    assert not np.array_equal(np.asarray(Image.open(a2b)), np.asarray(Image.open(b2a)))
    same = tmp_path / "same.png"
    runner.invoke(app, ["translate", str(translator), str(src), "-o", str(same), "--direction", "horse2zebra"])
    assert np.array_equal(np.asarray(Image.open(same)), np.asarray(Image.open(a2b)))
    both = tmp_path / "both.png"
    r = runner.invoke(app, ["translate", str(translator), str(src), "-o", str(both), "--side-by-side", "--size", "48"])
    assert r.exit_code == 0 and Image.open(both).size == (2 * 80, 48)
    r = runner.invoke(app, ["translate", str(translator), str(src), "--direction", "cat"])
    assert r.exit_code == 2 and "unknown direction 'cat'" in r.output


def test_translate_folders_and_globs(translator, tmp_path):
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    for i in range(3):
        picture(photos / f"p{i}.jpg", 20 + i, 16, seed=i)
    picture(photos / "sub" / "deep.png", 16, 16)
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    r = runner.invoke(app, ["translate", str(translator), str(photos), "--outdir", str(tmp_path / "zebras"),
                            "--batch-size", "2"])
    assert r.exit_code == 0, r.output
    assert "skipped" in r.output and "broken.jpg" in r.output
    made = sorted(p.relative_to(tmp_path / "zebras").as_posix() for p in (tmp_path / "zebras").rglob("*.*"))
    assert made == ["p0.jpg", "p1.jpg", "p2.jpg", "sub/deep.png"]
    assert Image.open(tmp_path / "zebras" / "p2.jpg").size == (22, 16)
    r = runner.invoke(app, ["translate", str(translator), str(photos / "p*.jpg")])
    assert r.exit_code == 0 and (photos / "p1-zebra.jpg").is_file()
    r = runner.invoke(app, ["translate", str(translator), str(photos), "-o", str(tmp_path / "x.png")])
    assert r.exit_code == 2 and "--outdir" in r.output
    r = runner.invoke(app, ["translate", str(translator), str(tmp_path / "missing.jpg")])
    assert r.exit_code == 2 and "does not exist" in r.output


def test_translation_and_sampling_models_refuse_each_other(translator, tiny_model_dir, tmp_path):
    r = runner.invoke(app, ["sample", str(translator), "-o", str(tmp_path / "x.png")])
    assert r.exit_code == 2 and "gan translate" in r.output
    src = picture(tmp_path / "a.png", 8, 8)
    r = runner.invoke(app, ["translate", str(tiny_model_dir), str(src)])
    assert r.exit_code == 2 and "not a translation model" in r.output


def test_fp16_shards_round_trip(translator, tmp_path):
    m = gancli.load(translator, device="cpu")
    m.save_pretrained(tmp_path / "sharded", card=CARD, dtype=torch.float16, max_shard_bytes=4000)
    names = sorted(p.name for p in (tmp_path / "sharded").iterdir())
    shards = [n for n in names if n.startswith("model-")]
    assert "model.safetensors.index.json" in names and len(shards) > 1 and "model.safetensors" not in names
    assert all(t.dtype == torch.float16 for t in load_file(tmp_path / "sharded" / shards[0]).values())
    m2 = gancli.load(tmp_path / "sharded", device="cpu")
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    assert torch.allclose(m.translate(x), m2.translate(x), atol=2e-2)
    cfg = json.loads((tmp_path / "sharded" / "config.json").read_text())
    shard = next(n for n in names if n.startswith("model-"))
    cfg["files"][shard]["sha256"] = "0" * 64
    (tmp_path / "sharded" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(WeightsError, match="sha256"):
        gancli.load(tmp_path / "sharded", device="cpu")


def test_convert_reference_cyclegan_generators(tmp_path):
    torch.manual_seed(1)
    g_a, g_b = ResnetGenerator(3, 8, 2), ResnetGenerator(3, 8, 2)
    legacy = g_a.state_dict() | {"model.2.running_mean": torch.zeros(8), "model.2.running_var": torch.ones(8)}
    torch.save(legacy, tmp_path / "latest_net_G_A.pth")
    torch.save({f"module.{k}": v for k, v in g_b.state_dict().items()}, tmp_path / "latest_net_G_B.pth")
    r = runner.invoke(app, ["convert", str(tmp_path / "latest_net_G_A.pth"), str(tmp_path / "latest_net_G_B.pth"),
                            "--arch", "cyclegan", "--domains", "horse,zebra", "-o", str(tmp_path / "h2z")])
    assert r.exit_code == 0, r.output
    m = gancli.load(tmp_path / "h2z", device="cpu")
    x = torch.rand(2, 3, 20, 20) * 2 - 1
    assert torch.allclose(m.translate(x, "zebra"), g_a(x), atol=1e-6)
    assert torch.allclose(m.translate(x, "b2a"), g_b(x), atol=1e-6)
    assert "gan convert" in (tmp_path / "h2z" / "README.md").read_text()


def test_convert_refuses_pickles_and_mismatches(tmp_path):
    class Payload:
        def __reduce__(self):
            return (shutil.rmtree, (str(tmp_path / "victim"),))

    (tmp_path / "victim").mkdir()
    torch.save({"model.1.weight": Payload()}, tmp_path / "evil.pth")
    r = runner.invoke(app, ["convert", str(tmp_path / "evil.pth"), "--arch", "cyclegan", "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and "refusing to unpickle" in r.output
    assert (tmp_path / "victim").is_dir()
    sd = ResnetGenerator(3, 8, 2).state_dict()
    sd["model.19.weight"] = torch.zeros(3, 8, 5, 5)  # the last conv, with 2 blocks
    torch.save(sd, tmp_path / "bad.pth")
    r = runner.invoke(app, ["convert", str(tmp_path / "bad.pth"), "--arch", "cyclegan", "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and "shape mismatch" in r.output and "model.19.weight" in r.output


def test_convert_the_pytorch_dcgan_example(tmp_path):
    nz, ngf, nc = 16, 8, 3
    net_g = nn.Sequential(  # the classic example's Generator.main, 64x64
        nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
        nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh())
    for m in net_g.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
    torch.save({f"main.{k}": v for k, v in net_g.state_dict().items()}, tmp_path / "netG.pth")
    r = runner.invoke(app, ["convert", str(tmp_path / "netG.pth"), "--arch", "dcgan", "-o", str(tmp_path / "d")])
    assert r.exit_code == 0, r.output
    m = gancli.load(tmp_path / "d", device="cpu")
    assert m.image_size == 64 and m.latent_dim == nz
    z = torch.randn(3, nz)
    assert torch.allclose(m.generator(z), net_g.eval()(z[:, :, None, None]), atol=1e-6)


def _cycle_data(root):
    rng = np.random.default_rng(0)
    for dom, base in (("trainA", 40), ("trainB", 200)):
        (root / dom).mkdir(parents=True)
        for i in range(5):
            Image.fromarray((rng.random((36, 40, 3)) * 50 + base).astype(np.uint8)).save(root / dom / f"{i}.png")
    return root


def _cycle_opts(data, out, **kw):
    return TrainOptions(**(dict(data=str(data), out=str(out), arch="cyclegan", steps=6, size=32, g_width=4,
                                d_width=4, n_blocks=1, batch_size=2, pool_size=3, domains="red,blue",
                                sample_every=3, checkpoint_every=3, log_every=1, device="cpu") | kw))


def test_cyclegan_trains_resumes_exactly_and_exports(tmp_path):
    data = _cycle_data(tmp_path / "data")
    Trainer(_cycle_opts(data, tmp_path / "a", steps=8)).run()
    interrupt_at(Trainer(_cycle_opts(data, tmp_path / "b", steps=8)), 4)
    resumed = Trainer(_cycle_opts(data, tmp_path / "b", steps=8, resume=True))
    assert resumed.step == 5 and resumed.objective.pools[0].count == 3
    resumed.run()
    a = load_file(tmp_path / "a" / "export" / "model.safetensors")
    b = load_file(tmp_path / "b" / "export" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert all(v.dtype == torch.float16 for v in a.values()) and all(k.startswith("generator.") for k in a)
    cfg = json.loads((tmp_path / "a" / "export" / "config.json").read_text())
    assert cfg["task"] == "translation" and cfg["domains"] == ["red", "blue"]
    rows = [json.loads(l) for l in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert {"loss_cycle", "loss_idt", "loss_gan"} <= set(rows[0])
    assert rows[0]["lr_g"] == 2e-4 and rows[-1]["lr_g"] < rows[5]["lr_g"] < 2e-4  # constant, then linear decay
    grid = Image.open(tmp_path / "a" / "samples" / "step-00000003.png")
    # real A, fake B, rec A, real B, fake A, rec B per row, under the step caption
    assert grid.size == captioned(Image.new("RGB", (6 * 34 + 2, 4 * 34 + 2)), "step 3").size
    card = (tmp_path / "a" / "export" / "README.md").read_text()
    assert "gan translate" in card and "pipeline_tag: image-to-image" in card


def test_cyclegan_cli_with_two_folders(tmp_path):
    data = _cycle_data(tmp_path / "data")
    r = runner.invoke(app, ["train", str(data / "trainA"), str(data / "trainB"), "--arch", "cyclegan", "--out",
                            str(tmp_path / "run"), "--steps", "2", "--size", "32", "--g-width", "4", "--d-width", "4",
                            "--blocks", "1", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    cfg = json.loads((tmp_path / "run" / "export" / "config.json").read_text())
    assert cfg["domains"] == ["trainA", "trainB"] and cfg["training"]["batch_size"] == 1
    assert "gan train" in cfg["training"]["command"] and str(data / "trainB") in cfg["training"]["command"]
    r = runner.invoke(app, ["train", str(data / "trainA"), "--arch", "cyclegan", "--out", str(tmp_path / "r2")])
    assert r.exit_code == 2 and "trainA/ and trainB/" in r.output


def test_cyclegan_trains_on_crops_at_the_photos_scale(tmp_path):
    """--load-size keeps the photos' scale and --size cuts a random crop from them: a model trained on 24 px crops
    of 40 px photos translates a whole 40x36 photo into a 40x36 photo."""
    data = _cycle_data(tmp_path / "data")
    t = Trainer(_cycle_opts(data, tmp_path / "run", size=24, load_size=40, steps=2))
    assert tuple(t.images[0].shape[-2:]) == (40, 40) and t.crop == 24
    x, _ = t.take(t.images[0], 0, 0, 0)
    assert tuple(x.shape[-2:]) == (24, 24)
    t.run()
    cfg = json.loads((tmp_path / "run" / "export" / "config.json").read_text())
    assert cfg["training"]["crop"] == 24 and cfg["training"]["load_size"] == 40
    out = tmp_path / "out.png"
    r = runner.invoke(app, ["translate", str(tmp_path / "run" / "export"), str(data / "trainA" / "0.png"),
                            "-o", str(out), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert Image.open(out).size == (40, 36)
    r = runner.invoke(app, ["train", str(data), "--arch", "cyclegan", "--size", "32", "--load-size", "24",
                            "--out", str(tmp_path / "bad")])
    assert r.exit_code == 2 and "--load-size 24 is smaller than the --size 32 crop" in r.output
    r = runner.invoke(app, ["train", str(data), "--arch", "cyclegan", "--size", "16", "--out", str(tmp_path / "bad")])
    assert r.exit_code == 2 and "--size 16: the PatchGAN discriminator needs crops of at least 24 px" in r.output


def test_cyclegan_eval_every_translates_held_out_photos(tmp_path):
    """--eval-every on a translator: the held-out testA/testB photos translated whole, the judged share and the grey
    SSIM per direction in metrics.jsonl and quality.png, and a grid of inputs over outputs."""
    data = _cycle_data(tmp_path / "data")
    rng = np.random.default_rng(1)
    for dom, base in (("testA", 40), ("testB", 200)):
        (data / dom).mkdir()
        for i in range(3):
            Image.fromarray((rng.random((44, 52, 3)) * 50 + base).astype(np.uint8)).save(data / dom / f"{i}.png")
    Trainer(_cycle_opts(data, tmp_path / "run", steps=4, eval_every=2, eval_samples=100)).run()
    rows = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if r.get("event") == "eval"]
    assert [r["step"] for r in evals] == [2, 4]
    for r in evals:
        assert r["held_out"] is True and r["feature_extractor"] == "classifier-horse2zebra"
        assert -1 <= r["structure_a2b"] <= 1 and -1 <= r["structure_b2a"] <= 1
        # red,blue are not the judge's horse,zebra, and this folder is not horse2zebra: no judged share
        assert "target_domain_rate_a2b" not in r
    assert (tmp_path / "run" / "quality.png").is_file()
    grid = Image.open(tmp_path / "run" / "translations" / "step-00000004.png")
    # rows: A's photos, their translations, B's photos, theirs; 3 photos each at their own 52x44, 2 px apart
    assert grid.size == captioned(Image.new("RGB", (3 * 54 + 2, 4 * 46 + 2)), "step 4").size


def test_cyclegan_init_from_a_crop_trained_model(tmp_path):
    """--init-from starts both generators from an earlier model (a run, its export or a zoo name): fine-tuning a
    model trained on crops on whole images. Another family or shape is one error line."""
    data = _cycle_data(tmp_path / "data")
    Trainer(_cycle_opts(data, tmp_path / "crops", size=24, load_size=40, steps=2)).run()
    start = load_file(tmp_path / "crops" / "export" / "model.safetensors")
    t = Trainer(_cycle_opts(data, tmp_path / "whole", size=40, steps=1, init_from=str(tmp_path / "crops")))
    ours = t.G.state_dict()
    assert all(torch.equal(ours[k[len("generator."):]], v.float()) for k, v in start.items())
    assert t.objective.training_record()["init_from"] == str(tmp_path / "crops")
    base = ["train", str(data), "--arch", "cyclegan", "--size", "32", "--g-width", "4", "--d-width", "4",
            "--steps", "1", "--out", str(tmp_path / "x")]
    r = runner.invoke(app, base + ["--blocks", "2", "--init-from", str(tmp_path / "crops")])
    assert r.exit_code == 2 and "another generator shape: n_blocks 1 (here 2)" in r.output
    r = runner.invoke(app, base + ["--blocks", "1", "--init-from", "dcgan-mnist"])
    assert r.exit_code == 2 and "--init-from takes cyclegan models; dcgan-mnist is dcgan" in r.output
    assert not (tmp_path / "x").exists()


def test_the_cuda_training_padding_is_reflection_padding():
    """CycleGAN pads with mirrored slices when it trains on CUDA (PyTorch's CUDA reflection-pad backward uses
    atomics: runs were not repeatable there): the same values and gradients as nn.ReflectionPad2d."""
    from gancli.families.cyclegan import mirror_pad

    for p in (1, 3):
        x = torch.randn(2, 3, 9, 11, requires_grad=True)
        w = torch.randn(2, 3, 9 + 2 * p, 11 + 2 * p)
        a = nn.ReflectionPad2d(p)(x)
        (ga,) = torch.autograd.grad((a * w).sum(), x)
        b = mirror_pad(x, (p, p, p, p))
        (gb,) = torch.autograd.grad((b * w).sum(), x)
        assert torch.equal(a, b) and torch.allclose(ga, gb, atol=1e-6)


def test_cyclegan_eval_every_judges_horse2zebra_photos(tmp_path):
    """On the horse2zebra layout the zoo's horse/zebra classifier judges the translations: the share it reads as
    the target domain is recorded per direction (here an untrained model on noise, so only its range is known)."""
    data = tmp_path / "horse2zebra"
    rng = np.random.default_rng(2)
    for dom in ("trainA", "trainB", "testA", "testB"):
        (data / dom).mkdir(parents=True)
        for i in range(4):
            Image.fromarray((rng.random((40, 40, 3)) * 255).astype(np.uint8)).save(data / dom / f"{i}.png")
    Trainer(_cycle_opts(data, tmp_path / "run", steps=2, eval_every=2, eval_samples=100, domains="horse,zebra")).run()
    [row] = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines() if '"eval"' in l]
    assert row["held_out"] is True
    assert {"target_domain_rate_a2b", "target_domain_rate_b2a"} <= set(row)
    assert all(row[k] in (0.0, 0.25, 0.5, 0.75, 1.0) for k in ("target_domain_rate_a2b", "target_domain_rate_b2a"))


def test_cyclegan_resize_upsampling_trains_exports_and_old_configs_keep_transposed(tmp_path):
    """--upsample resize (nearest doubling, then a convolution: no grid pattern) is written into config.json and
    translates whole photos; a config.json without the key (every model before the option) is the reference's
    transposed convolutions, and an unknown value is refused in one line."""
    data = _cycle_data(tmp_path / "data")
    r = runner.invoke(app, ["train", str(data / "trainA"), str(data / "trainB"), "--arch", "cyclegan", "--out",
                            str(tmp_path / "run"), "--steps", "2", "--size", "32", "--g-width", "4", "--d-width", "4",
                            "--blocks", "1", "--device", "cpu", "--upsample", "resize"])
    assert r.exit_code == 0, r.output
    export = tmp_path / "run" / "export"
    cfg = json.loads((export / "config.json").read_text())
    assert cfg["arch_args"]["upsample"] == "resize"
    model = GANModel.from_pretrained(export, device="cpu")
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in model.generator.modules())
    out = tmp_path / "out.png"
    r = runner.invoke(app, ["translate", str(export), str(picture(tmp_path / "in.png", 44, 36)), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert Image.open(out).size == (44, 36)
    assert sum(p.numel() for p in ResnetGenerator(3, 8, 2, "resize").parameters()) == \
        sum(p.numel() for p in ResnetGenerator(3, 8, 2).parameters())

    old = tmp_path / "old"
    shutil.copytree(export, old)
    cfg["arch_args"].pop("upsample")
    (old / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(WeightsError, match="(?i)shape|missing|unexpected"):  # its weights are resize-shaped
        GANModel.from_pretrained(old, device="cpu")
    from gancli.families.catalog import get
    assert any(isinstance(m, nn.ConvTranspose2d) for m in get("cyclegan").build(**cfg["arch_args"])["generator"].modules())
    cfg["arch_args"]["upsample"] = "bilinear-ish"
    (old / "config.json").write_text(json.dumps(cfg))
    r = runner.invoke(app, ["translate", str(old), str(tmp_path / "in.png"), "-o", str(tmp_path / "o2.png")])
    assert r.exit_code == 2 and "upsample" in r.output and not (tmp_path / "o2.png").exists()


def test_a_run_made_before_upsample_existed_resumes(tmp_path):
    """A run folder from before --upsample (no key in options.json nor in its checkpoints' arch_args) resumes, as
    the transposed-convolution run it was, and exports a config that says so."""
    data = _cycle_data(tmp_path / "data")
    Trainer(_cycle_opts(data, tmp_path / "old", steps=3)).run()
    options = json.loads((tmp_path / "old" / "options.json").read_text())
    options.pop("upsample")
    (tmp_path / "old" / "options.json").write_text(json.dumps(options))
    for path in (tmp_path / "old" / "checkpoints").glob("step-*.pt"):
        state = torch.load(path, weights_only=True)
        state["arch_args"].pop("upsample")
        torch.save(state, path)
    shutil.rmtree(tmp_path / "old" / "export")
    Trainer(_cycle_opts(data, tmp_path / "old", steps=5, resume=True)).run()
    config = json.loads((tmp_path / "old" / "export" / "config.json").read_text())
    assert config["arch_args"]["upsample"] == "transpose" and config["training"]["steps"] == 5


def smooth_picture(path, w, h):
    """A photo-like picture: gradients and soft blobs (a downscaled copy keeps its statistics, unlike noise)."""
    yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
    rgb = np.stack([np.sin(6 * xx + 2 * yy), np.cos(5 * yy - 3 * xx), np.sin(4 * (xx + yy)) * np.cos(3 * xx)], -1)
    Image.fromarray(((rgb + 1) * 127.5).astype(np.uint8)).save(path)
    return path


def test_a_large_picture_runs_in_tiles_without_seams(translator, tmp_path, monkeypatch):
    """Above WHOLE_PIXELS a picture runs in tiles, no tile larger than TILE plus the receptive field around it,
    normalised with statistics measured once: the tiles meet exactly (the measured network on the whole picture
    gives the same pixels), and the result is the untiled translation but for those statistics."""
    from gancli.data.tensors import to_tensor
    from gancli.families.inference import receptive_radius
    from gancli.use import translate as tr

    model = GANModel.from_pretrained(translator, device="cpu")
    src = smooth_picture(tmp_path / "big.png", 150, 110)
    whole = tr.translate_images(model, [Image.open(src).convert("RGB")], "a2b")[0]
    monkeypatch.setattr(tr, "WHOLE_PIXELS", 128 * 96)
    monkeypatch.setattr(tr, "TILE", 32)
    seen, measured = [], model.measured

    def watched(view, direction):
        net, reach = measured(view, direction)
        seen.append(("view", tuple(view.shape[-2:])))
        return (lambda t: seen.append(("tile", tuple(t.shape[-2:]))) or net(t)), reach

    monkeypatch.setattr(model, "measured", watched)
    ticks = []
    tiled = tr.translate_images(model, [Image.open(src).convert("RGB")], "a2b", on_tile=lambda: ticks.append(1))[0]
    reach = round(receptive_radius(model.generator.a2b))
    margin = -(-reach // 4) * 4
    assert tiled.size == whole.size == (150, 110) and len(ticks) == tr.tiles(110, 150) == 4 * 5
    views = [s for kind, s in seen if kind == "view"]
    assert len(views) == 1 and views[0][0] * views[0][1] <= 132 * 100
    assert max(h * w for kind, (h, w) in seen if kind == "tile") <= (32 + 2 * margin) ** 2
    # the tiles are the measured network's output on the whole picture: no seams
    x, _ = tr.pad_to_multiple(to_tensor(Image.open(src).convert("RGB"), 3)[None], 4)
    view = torch.nn.functional.interpolate(x, size=views[0], mode="bicubic", antialias=True).clamp(-1, 1)
    net, _ = measured(view, "a2b")
    one = ((net(x)[0, :, :110, :150].clamp(-1, 1) + 1) * 127.5).round().permute(1, 2, 0).numpy()
    gap = np.abs(np.asarray(tiled).astype(int) - one.astype(int))
    assert gap.max() <= 1 and (gap == 0).mean() > 0.999, (gap.max(), (gap == 0).mean())
    # and near the untiled translation (its own statistics, from every pixel; these are from 1.15x fewer)
    assert np.abs(np.asarray(tiled).astype(int) - np.asarray(whole).astype(int)).mean() < 5


def test_the_receptive_radius_bounds_what_an_output_reads():
    from gancli.families.inference import receptive_radius

    torch.manual_seed(0)
    net = ResnetGenerator(1, 4, 2).eval()
    for m in net.modules():  # norms off: a change's reach is then the layers' alone
        if isinstance(m, nn.InstanceNorm2d):
            m.forward = lambda x: x
    radius = receptive_radius(net)
    x = torch.randn(1, 1, 96, 96)
    y = x.clone()
    y[..., 48, 48] += 1
    with torch.no_grad():
        moved = (net(y) - net(x)).abs()[0, 0] > 0
    rows, cols = moved.nonzero(as_tuple=True)
    reach = max((rows - 48).abs().max(), (cols - 48).abs().max()).item()
    assert 0.6 * radius < reach <= radius, (reach, radius)


def test_gan_translate_shows_a_large_pictures_tiles(translator, tmp_path, monkeypatch):
    from gancli.use import translate as tr

    monkeypatch.setattr(tr, "WHOLE_PIXELS", 48 * 48)
    monkeypatch.setattr(tr, "TILE", 32)
    big, small = smooth_picture(tmp_path / "big.png", 70, 50), picture(tmp_path / "small.png", 20, 16)
    model = GANModel.from_pretrained(translator, device="cpu")
    from gancli.data.fileplan import plan

    assert tr.total_steps(model, plan([str(big), str(small)], "zebra"), None) == 3 * 2 + 1
    assert tr.total_steps(model, plan([str(big)], "zebra"), 20) == 1  # --size 20: 28x20, whole
    r = runner.invoke(app, ["translate", str(translator), str(big), str(small), "--outdir", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "out" / "big.png").size == (70, 50)
    assert Image.open(tmp_path / "out" / "small.png").size == (20, 16)
