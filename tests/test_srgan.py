"""SRGAN / SRResNet: training on image folders, `gan upscale` (tiles, memory bound, inputs, errors), `gan eval`."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

import gancli
from gancli.cli import app
from gancli.families.srgan import SRResNet, downscale
from gancli.quality.formulas import luma, psnr, ssim
from gancli.use.upscale import upscale_tensor

runner = CliRunner()
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "horse2zebra"
ZOO = Path(__file__).resolve().parents[1] / "zoo"


def smooth_image(path: Path, w: int, h: int, seed: int):
    """Smooth colour waves: something a few training steps can upscale."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:h, :w]
    arr = np.stack([127 + 100 * np.sin(x * rng.uniform(0.05, 0.3) + y * rng.uniform(0.05, 0.3) + c)
                    for c in range(3)], -1)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.astype(np.uint8)).save(path)
    return path


def one_error(r, *words):
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert r.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error:"), r.output
    assert all(w in lines[0] for w in words), lines[0]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A data set laid out as trainA/ trainB/ testA/; an SRResNet trained on it by `gan train`, and an SRGAN
    started from it (--init-from)."""
    root = tmp_path_factory.mktemp("sr")
    data = root / "data"
    for split, n in (("trainA", 6), ("trainB", 6), ("testA", 3)):
        for i in range(n):
            smooth_image(data / split / f"{i}.png", 40, 40, seed=hash((split, i)) % 1000)
    common = ["--arch", "srgan", "--g-width", "4", "--d-width", "4", "--blocks", "1", "--size", "16",
              "--batch-size", "4", "--checkpoint-every", "100"]
    r = runner.invoke(app, ["train", str(data), *common, "--steps", "3", "--adversarial-weight", "0",
                            "--out", str(root / "mse")])
    assert r.exit_code == 0, r.output
    r2 = runner.invoke(app, ["train", str(data), *common, "--steps", "2", "--init-from", str(root / "mse"),
                             "--out", str(root / "gan")])
    assert r2.exit_code == 0, r2.output
    return {"data": data, "mse": root / "mse", "gan": root / "gan"}


def test_trains_on_the_train_folders_and_srgan_starts_from_the_mse_model(runs):
    log = (runs["mse"] / "log.txt").read_text()
    assert "12 images" in log and "trainA + " in log and "testA" not in log  # test images stay unseen
    config = json.loads((runs["mse"] / "export" / "config.json").read_text())
    assert config["task"] == "super-resolution" and config["scale"] == 4
    assert config["training"]["content_loss"] == "mse"
    gan = json.loads((runs["gan"] / "export" / "config.json").read_text())["training"]
    assert gan["content_loss"] == "features" and gan["adversarial_weight"] == 0.001
    start = torch.load(runs["gan"] / "checkpoints" / "step-00000000.pt", weights_only=True)["networks"]["generator"]
    mse = load_file(runs["mse"] / "export" / "model.safetensors")
    for k, v in start.items():
        if v.is_floating_point():
            assert torch.equal(v, mse[f"generator.{k}"].float()), k


def test_init_from_refuses_other_models(runs, tiny_model_dir, tmp_path):
    base = ["train", str(runs["data"]), "--arch", "srgan", "--g-width", "4", "--size", "16", "--steps", "1",
            "--out", str(tmp_path / "x")]
    one_error(runner.invoke(app, base + ["--blocks", "2", "--init-from", str(runs["mse"])]),
              "another generator shape", "n_blocks 1 (here 2)")
    one_error(runner.invoke(app, base + ["--blocks", "1", "--init-from", str(tiny_model_dir)]), "takes srgan models")
    one_error(runner.invoke(app, base + ["--size", "18"]), "multiple of --scale")
    assert not (tmp_path / "x").exists()


def test_upscale_a_file_a_folder_and_a_glob(runs, tmp_path):
    model = str(runs["mse"] / "export")
    src = smooth_image(tmp_path / "in" / "sub" / "a.png", 23, 17, 1)
    smooth_image(tmp_path / "in" / "b.jpg", 10, 12, 2)
    r = runner.invoke(app, ["upscale", model, str(src), "-o", str(tmp_path / "one.png")])
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "one.png").size == (92, 68)
    r = runner.invoke(app, ["upscale", model, str(tmp_path / "in"), "--outdir", str(tmp_path / "big")])
    assert r.exit_code == 0 and "upscaled 2 image(s)" in r.output, r.output
    assert Image.open(tmp_path / "big" / "sub" / "a.png").size == (92, 68)
    assert Image.open(tmp_path / "big" / "b.jpg").size == (40, 48)
    r = runner.invoke(app, ["upscale", model, str(tmp_path / "in" / "*" / "*.png"), "--scale", "2.5"])
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "in" / "sub" / "a-x2.5.png").size == (round(23 * 2.5), round(17 * 2.5))


def test_upscale_refuses_bad_scales_tiles_and_models(runs, tiny_model_dir, tmp_path):
    model, src = str(runs["mse"] / "export"), str(smooth_image(tmp_path / "a.png", 8, 8, 0))
    for scale in ("5", "1", "0", "nan"):
        one_error(runner.invoke(app, ["upscale", model, src, "--scale", scale]), "--scale")
    one_error(runner.invoke(app, ["upscale", model, src, "--tile", "4"]), "--tile 4", "margin")
    one_error(runner.invoke(app, ["upscale", str(tiny_model_dir), src]), "dcgan", "gan upscale is for srgan")
    one_error(runner.invoke(app, ["sample", model]), "gan upscale")
    one_error(runner.invoke(app, ["upscale", model, str(tmp_path / "missing.png")]), "does not exist")
    for out in ("out.txt", "res.gif", "noext"):  # once written as out.png, res.png, noext.png with exit 0
        one_error(runner.invoke(app, ["upscale", model, src, "-o", str(tmp_path / out)]), out)
        one_error(runner.invoke(app, ["translate", "no-such-model", src, "-o", str(tmp_path / out)]), out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "tiny"]  # nothing written


def random_srresnet(blocks=2, upsample="shuffle", antialias=False):
    torch.manual_seed(0)
    net = SRResNet(3, 4, blocks, 4, upsample=upsample, antialias=antialias).eval()
    for m in net.modules():  # stored statistics that matter, and weights that make detail
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    torch.nn.init.normal_(net.tail.weight, 0, 0.1)
    return net


@pytest.mark.parametrize("upsample", ["shuffle", "resize"])
def test_tiles_give_the_untiled_output_without_seams(upsample):
    net = random_srresnet(upsample=upsample)
    x = torch.rand(3, 70, 101) * 2 - 1
    with torch.no_grad():
        whole = net(x[None])[0].clamp(-1, 1).add(1).mul(127.5).round().permute(1, 2, 0).numpy()
    tiled = upscale_tensor(net, x, 4, net.margin, tile=2 * net.margin + 9)  # many tiles, most of them overlapping
    assert tiled.shape == (280, 404, 3) and tiled.dtype == np.uint8
    assert np.abs(tiled.astype(int) - whole.astype(int)).max() <= 1


@pytest.mark.parametrize("upsample,antialias", [("shuffle", False), ("resize", False), ("shuffle", True),
                                                ("resize", True)])
def test_the_staged_path_draws_the_plain_networks_pixels(upsample, antialias):
    """gan upscale's path (the trunk on large tiles, the rise rewritten on sub-pixel phases, on small ones; with
    --antialias the last blur on the phases at the image's edges and after the tail inside) is the network's own
    function: against the plain network on the whole image, no pixel a grey level further than float rounding
    takes it, and almost all equal."""
    from gancli.families.subpixel import StagedSR
    from gancli.use.upscale import upscale_staged

    net = random_srresnet(upsample=upsample, antialias=antialias)
    staged = StagedSR(net).eval()
    x = torch.rand(3, 70, 101) * 2 - 1
    with torch.no_grad():
        whole = net(x[None])[0].clamp(-1, 1).add(1).mul(127.5).round().permute(1, 2, 0).numpy()
    for tile, rise in ((2 * net.margin + 9, 2 * staged.rise_margin + 5), (2 * net.margin + 40, 64)):
        for fmt in (torch.contiguous_format, torch.channels_last):
            ours = upscale_staged(staged, x, tile, rise, memory_format=fmt)
            assert ours.shape == (280, 404, 3) and ours.dtype == np.uint8
            gap = np.abs(ours.astype(int) - whole.astype(int))
            assert gap.max() <= 1 and (gap == 0).mean() > 0.9995, (tile, fmt, gap.max(), (gap == 0).mean())


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data/horse2zebra")
def test_bf16_upscales_a_real_photo_within_two_grey_levels_of_fp32():
    """--bf16 (a bf16 copy of the trunk and rise; the bicubic skip in fp32): a held-out photo within 2 grey levels
    of the fp32 path's pixels, on both zoo models."""
    from gancli import load
    from gancli.data.tensors import to_tensor
    from gancli.use.upscale import upscale_staged

    photo = Image.open(sorted((SHARED / "testA").iterdir())[1]).convert("RGB").resize((96, 72))
    x = to_tensor(photo, 3)
    for name in ("srresnet-x4", "srgan-x4"):
        model = load(name, device="cpu")
        fp32 = upscale_staged(model.staged(), x, memory_format=model.memory_format)
        model.bf16 = True
        with model.autocast():
            bf16 = upscale_staged(model.staged(), x, memory_format=model.memory_format, dtype=model.input_dtype)
        gap = np.abs(bf16.astype(int) - fp32.astype(int))
        assert gap.max() <= 2 and gap.mean() < 0.2, (name, gap.max(), gap.mean())


def test_antialias_keeps_the_weights_and_the_tiles_and_loses_the_lattice():
    """--antialias adds no parameter (a model's weights load into it, and back), its margin still covers what an
    output pixel reads (tiles give the untiled pixels), and it flattens a sub-pixel stage's 2-pixel pattern."""
    from gancli.families.srgan import SRResNet
    from gancli.families.subpixel import StagedSR
    from gancli.quality.formulas import lattice
    from gancli.use.upscale import upscale_staged

    torch.manual_seed(0)
    plain, blurred = random_srresnet(), SRResNet(3, 4, 2, 4, True, "shuffle", antialias=True).eval()
    blurred.load_state_dict(plain.state_dict())
    assert set(blurred.state_dict()) == set(plain.state_dict()) and blurred.margin >= plain.margin
    x = torch.rand(3, 60, 75) * 2 - 1
    with torch.no_grad():
        whole = blurred(x[None])[0].clamp(-1, 1).add(1).mul(127.5).round().permute(1, 2, 0).numpy()
        grey = [net(x[None])[0].mean(0) for net in (plain, blurred)]
    staged = StagedSR(blurred).eval()
    tiled = upscale_staged(staged, x, 2 * blurred.margin + 9, 2 * staged.rise_margin + 5)
    assert np.abs(tiled.astype(int) - whole.astype(int)).max() <= 1
    assert lattice(grey[1]) < lattice(grey[0])


def test_the_tiler_never_feeds_more_than_a_tile():
    net, seen = random_srresnet(blocks=1), []

    def watched(t):
        seen.append((t.shape[-2] * t.shape[-1], torch.is_grad_enabled()))
        return net(t)

    tile = 2 * net.margin + 20
    out = upscale_tensor(watched, torch.zeros(3, 90, 70), 4, net.margin, tile=tile)
    assert out.shape == (360, 280, 3) and len(seen) == 5 * 4
    assert max(n for n, _ in seen) <= tile * tile and not any(grad for _, grad in seen)


def test_psnr_and_ssim_on_known_cases():
    x = torch.randint(0, 250, (2, 1, 32, 32)).float()
    assert torch.allclose(psnr(x, x + 4), torch.full((2,), 10 * np.log10(255 ** 2 / 16)))
    assert torch.allclose(ssim(x, x), torch.ones(2))
    assert float(ssim(x, 255 - x).mean()) < 0
    assert luma(torch.full((1, 3, 1, 1), 255, dtype=torch.uint8)).item() == pytest.approx(235, abs=0.01)


def test_eval_measures_the_test_split_beside_bicubic(runs, tmp_path):
    r = runner.invoke(app, ["eval", str(runs["mse"] / "export"), "--real", str(runs["data"]),
                            "--json", str(tmp_path / "e.json")])
    assert r.exit_code == 0, r.output
    e = json.loads((tmp_path / "e.json").read_text())
    assert e["images"] == 3 and e["folders"] == [str(runs["data"] / "testA")]
    for key in ("psnr", "ssim", "sharpness", "checkerboard"):
        assert e[key] > 0 and e[f"bicubic_{key}"] > 0
    assert e["original_checkerboard"] > 0 and "checkerboard" in r.output


def test_the_checkerboard_measure_sees_a_two_pixel_pattern():
    """About 1 for a smooth random image and its bicubic upscaling; a faint 2x2 pattern added to it lifts it well
    above (the sub-pixel artefact of issue 25)."""
    from gancli.quality.formulas import checkerboard

    g = torch.Generator().manual_seed(0)
    smooth = torch.randn(64, 64, generator=g).cumsum(0).cumsum(1)
    upscaled = torch.nn.functional.interpolate(smooth[None, None], scale_factor=4, mode="bicubic")[0, 0]
    assert 0.7 < checkerboard(smooth) < 1.5 and 0.7 < checkerboard(upscaled) < 1.5
    patterned = upscaled.clone()
    patterned[::2, ::2] += 0.05 * upscaled.std()
    assert checkerboard(patterned) > 3


def test_the_lattice_measure_sees_dots_the_row_and_column_spectra_barely_do():
    """About 1 for a smooth isotropic image; a faint grid of dots (every 4 pixels, offset every 2: energy on the
    diagonal frequencies) on its bicubic upscaling lifts the 2-D measure far above, the row/column one hardly."""
    from gancli.quality.formulas import checkerboard, lattice

    g = torch.Generator().manual_seed(0)
    k = torch.exp(-torch.arange(-6, 7.0) ** 2 / 8)
    blur = (k[:, None] * k[None]) / k.sum() ** 2
    smooth = torch.nn.functional.conv2d(torch.randn(1, 1, 140, 140, generator=g), blur[None, None])[0, 0]
    upscaled = torch.nn.functional.interpolate(smooth[None, None], scale_factor=4, mode="bicubic")[0, 0]
    assert 0.7 < lattice(smooth) < 1.5 and lattice(upscaled) < 1.5
    dotted = upscaled.clone()
    dotted[::4, ::4] += 0.002 * upscaled.std()
    dotted[2::4, 2::4] += 0.002 * upscaled.std()
    assert checkerboard(dotted) < 1.1 < 3 < lattice(dotted)


@pytest.mark.skipif(not SHARED.is_dir() or not (ZOO / "srresnet-x4").is_dir(), reason="needs the zoo and data")
def test_zoo_models_restore_a_real_test_image(tmp_path):
    """srresnet-x4 beats bicubic on a held-out horse; srgan-x4 upscales it through the CLI."""
    from gancli import load
    from gancli.families.srgan import bicubic

    hr = torch.from_numpy(np.array(Image.open(sorted((SHARED / "testA").iterdir())[0]).convert("RGB")))
    hr = hr.permute(2, 0, 1)[None]
    lr = downscale(hr.float() / 127.5 - 1, 4)
    model = load("srresnet-x4", device="cpu")
    ours = torch.from_numpy(upscale_tensor(model.generator, lr[0], 4, model.generator.margin)).permute(2, 0, 1)
    base = bicubic(lr, 4)[0].clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    crop = (..., slice(4, -4), slice(4, -4))
    assert psnr(luma(ours[None])[crop], luma(hr)[crop]) > psnr(luma(base[None])[crop], luma(hr)[crop])
    small = tmp_path / "small.png"
    Image.fromarray(((lr[0].permute(1, 2, 0) + 1) * 127.5).round().byte().numpy()).save(small)
    r = runner.invoke(app, ["upscale", "srgan-x4", str(small), "-o", str(tmp_path / "big.png")])
    assert r.exit_code == 0 and Image.open(tmp_path / "big.png").size == (256, 256), r.output


def test_a_folder_upscaled_twice_leaves_its_own_outputs_out(runs, tmp_path):
    from gancli.data.fileplan import plan

    model, rep = str(runs["mse"] / "export"), tmp_path / "rep"
    smooth_image(rep / "a.png", 6, 5, 0)
    smooth_image(rep / "b.bmp", 5, 6, 1)  # its output is b-x4.png
    for run in range(2):
        r = runner.invoke(app, ["upscale", model, str(rep)])
        assert r.exit_code == 0 and "upscaled 2 image(s)" in r.output, r.output
    assert "left out 2 earlier output(s)" in r.output, r.output
    assert sorted(p.name for p in rep.iterdir()) == ["a-x4.png", "a.png", "b-x4.png", "b.bmp"]
    assert len(plan([str(rep)], "zebra").jobs) == 4  # to `gan translate`, -x4 files are inputs like any other


def test_unreadable_inputs_alone_are_one_error_line(runs, tmp_path):
    model = str(runs["mse"] / "export")
    (tmp_path / "fake.jpg").write_bytes(b"not a jpeg")
    one_error(runner.invoke(app, ["upscale", model, str(tmp_path / "fake.jpg")]),
              "nothing upscaled:", "fake.jpg: not an image")
    (tmp_path / "fake2.png").write_bytes(b"")
    one_error(runner.invoke(app, ["upscale", model, str(tmp_path)]), "fake.jpg: not an image", "and 1 more")
    smooth_image(tmp_path / "ok.png", 5, 5, 0)
    r = runner.invoke(app, ["upscale", model, str(tmp_path)])  # some work: per-file notes, no error
    assert r.exit_code == 0 and "skipped" in r.output and "fake2.png" in r.output and "error" not in r.output
    assert (tmp_path / "ok-x4.png").is_file()


def test_eval_refuses_parzen_for_upscalers_and_translators(runs, translator):
    one_error(runner.invoke(app, ["eval", str(runs["mse"] / "export"), "--real", str(runs["data"]), "--parzen"]),
              "--parzen", "upscales")
    one_error(runner.invoke(app, ["eval", str(translator), "--real", str(runs["data"]), "--parzen"]),
              "--parzen", "translates")


def test_upscale_progress_advances_per_tile(runs, tmp_path):
    from gancli.data.fileplan import plan
    from gancli.use import upscale as up
    from gancli.use.model import load

    model = load(str(runs["mse"] / "export"), device="cpu")
    smooth_image(tmp_path / "a.png", 20, 12, 0)
    (tmp_path / "b.jpg").write_bytes(b"broken")
    p, tile = plan([str(tmp_path)], "x4"), 2 * model.generator.margin + 8  # 8 kept input pixels per tile side
    steps = []
    up.run(model, p, tile=tile, advance=steps.append)
    assert len(steps) == up.total_tiles(model, p, tile) == 3 * 2 + 1  # a.png's 3x2 tiles, then b.jpg skipped


def test_an_upscaler_refuses_to_sample_from_python_too():
    """The library says what the CLI says: an image-to-image model takes images, not z (it used to fail deep inside
    a convolution on a 0-wide z)."""
    model = gancli.load("srresnet-x4", device="cpu")
    assert model.image_operation == "upscale" and gancli.load("dcgan-mnist", device="cpu").image_operation is None
    with pytest.raises(ValueError, match="srresnet-x4 upscales images rather than sampling them: use `gan upscale`"):
        model.sample(2)


def test_the_sub_pixel_convolutions_start_as_nearest_neighbour_upsampling():
    """ICNR: at initialisation every 2x2 block a PixelShuffle stage makes is one value (no checkerboard to start
    from)."""
    from gancli.families.srgan import SRResNet

    torch.manual_seed(0)
    net = SRResNet(width=8, n_blocks=1)
    conv, shuffle = net.upsample[0], net.upsample[1]
    y = shuffle(conv(torch.randn(1, 8, 6, 6)))
    for i, j in ((0, 1), (1, 0), (1, 1)):
        assert torch.allclose(y[..., 0::2, 0::2], y[..., i::2, j::2])


def test_resize_upsampling_is_recorded_and_older_models_count_as_shuffle(runs, tmp_path):
    """--upsample resize: nearest doubling then a convolution (no sub-pixel pattern), written into config.json; an
    SRResNet written before the option (no upsample key) is a shuffle model, so --init-from it into a resize
    generator is refused in one line, and into a shuffle one accepted."""
    common = ["--arch", "srgan", "--g-width", "4", "--d-width", "4", "--blocks", "1", "--size", "16",
              "--batch-size", "4", "--steps", "1"]
    old = tmp_path / "old"
    shutil.copytree(runs["mse"] / "export", old)
    config = json.loads((old / "config.json").read_text())
    config["arch_args"].pop("upsample")
    (old / "config.json").write_text(json.dumps(config))
    r = runner.invoke(app, ["train", str(runs["data"]), *common, "--init-from", str(old), "--out", str(tmp_path / "a")])
    assert r.exit_code == 0, r.output
    one_error(runner.invoke(app, ["train", str(runs["data"]), *common, "--init-from", str(old), "--upsample", "resize",
                                  "--out", str(tmp_path / "b")]), "upsample shuffle")
    one_error(runner.invoke(app, ["train", str(runs["data"]), *common, "--upsample", "transpose", "--out",
                                  str(tmp_path / "t")]), "shuffle or resize")  # cyclegan's kind, not srgan's
    r = runner.invoke(app, ["train", str(runs["data"]), *common, "--adversarial-weight", "0", "--upsample", "resize",
                            "--out", str(tmp_path / "c")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "c" / "export" / "config.json").read_text())["arch_args"]["upsample"] == "resize"
    out = tmp_path / "up.png"
    r = runner.invoke(app, ["upscale", str(tmp_path / "c"), str(runs["data"] / "testA" / "0.png"), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert Image.open(out).size == (160, 160)


@pytest.mark.parametrize("scale", [2, 4])
def test_the_phased_bicubic_skip_is_bicubic(scale):
    """gan upscale adds the bicubic skip on the tail's sub-pixel phases: shuffled to the full size, it is
    F.interpolate's bicubic, edges included, to float rounding."""
    from gancli.families.subpixel import PhasedBicubic

    x = torch.rand(1, 3, 13, 17) * 2 - 1
    ours = torch.nn.functional.pixel_shuffle(PhasedBicubic(3, scale)(x), 2)
    assert ours.shape == (1, 3, 13 * scale, 17 * scale)
    assert torch.allclose(ours, torch.nn.functional.interpolate(x, scale_factor=scale, mode="bicubic",
                                                                align_corners=False), atol=1e-6)


def test_the_folded_trunk_is_the_trunk_with_and_without_the_fused_sum():
    """The trunk gan upscale runs (batch norms folded, residual sums fused on the CPU) computes the network's
    trunk; under autograd it takes the unfused path, with the same result."""
    from gancli.families.subpixel import FoldedTrunk

    net = random_srresnet()  # its batch norms' statistics are away from (0, 1): a fold that forgot them shows
    folded = FoldedTrunk(net).eval()
    x = torch.rand(1, 3, 30, 41) * 2 - 1
    with torch.no_grad():
        want = net.trunk(x)
        fused = folded(x)
    with torch.enable_grad():
        plain = folded(x)
    assert torch.allclose(fused, want, atol=1e-5) and torch.allclose(plain, want, atol=1e-5)
