"""PacGAN packing of issue 13 (Lin et al. 2018): D judges packs of samples; a packed run trains, resumes and
exports, conditional packs carry their label planes, and --pack is refused where it cannot apply."""
import json

import pytest
import torch
from tiny_families import assert_train_refused, train_split_and_whole

import gancli
from gancli.families import losses
from gancli.training.trainer import Trainer, TrainOptions


def _options(data, out, **kw):
    base = dict(data=str(data), out=str(out), steps=4, batch_size=8, g_width=4, d_width=4, latent_dim=8,
                sample_every=100, checkpoint_every=2, log_every=2, device="cpu", pack=2)
    return TrainOptions(**(base | kw))


def test_pack_2_trains_resumes_and_exports_a_generator_that_samples(image_folder, tmp_path):
    export, b = train_split_and_whole(lambda out, **kw: _options(image_folder, out, **kw), tmp_path)
    assert b["discriminator.net.0.weight"].shape[1] == 2  # one grey channel x 2 samples
    assert json.loads((export / "config.json").read_text())["arch_args"]["pack"] == 2
    m = gancli.load(export, device="cpu")
    assert m.sample(3, seed=0).shape == (3, 1, 28, 28)
    with pytest.raises(ValueError, match="pack"):  # a resume must keep the packing
        Trainer(_options(image_folder, tmp_path / "b", steps=6, resume=True, pack=1))


def test_conditional_pack_packs_each_images_label_planes_with_it(image_folder, tmp_path):
    t = Trainer(_options(image_folder, tmp_path / "c", steps=1, conditional=True))
    assert t.nets["discriminator"].net[0].in_channels == (1 + 2) * 2  # (grey + 2 class planes) x 2 samples
    t.run()


SMALL = {"dcgan": {"g_width": 4, "d_width": 4}, "mlp": {"g_hidden": [8], "d_hidden": [8]},
         "stylegan": {"g_width": 4, "d_width": 4}}  # small networks; a family not named here builds its defaults


def test_packed_discriminators_give_one_logit_per_pack():
    from gancli.families import catalog
    packing = [name for name, f in catalog.all_families().items() if any(o.name == "pack" for o in f.declared())]
    assert packing  # PacGAN's families: every one that declares --pack
    x = torch.rand(6, 1, 32, 32) * 2 - 1
    for arch in packing:
        d = catalog.get(arch).build(image_size=32, channels=1, pack=3, **SMALL.get(arch, {}))["discriminator"].eval()
        assert d(x).shape == (2,), arch


def test_wgan_gp_with_packs_takes_one_gradient_norm_per_pack():
    # a linear critic on a pack of two 1-pixel images with weights (0.6, 0.8): |grad| = 1 per pack, so no penalty;
    # per image the norms would be 0.6 and 0.8
    w = torch.tensor([0.6, 0.8])
    critic = lambda x, labels=None: x.reshape(len(x) // 2, 2) @ w
    real, fake = torch.randn(4, 1), torch.randn(4, 1)
    assert float(losses.gradient_penalty(critic, real, fake, pack=2)) == pytest.approx(0, abs=1e-12)
    single = lambda x, labels=None: x[:, 0] * 0.6
    assert float(losses.gradient_penalty(single, real, fake)) == pytest.approx(0.16)


@pytest.mark.parametrize("args, message", [
    (["--pack", "3"], "error: --batch-size 8 must be a multiple of --pack 3"),
    (["--pack", "9"], "error: --pack must be between 1 and 8"),
    (["--arch", "acgan", "--pack", "2"], "error: --pack is not an option of acgan"),
    (["--arch", "began", "--pack", "2"], "error: --pack is not an option of began"),
])
def test_pack_is_refused_in_one_line_where_it_cannot_apply(image_folder, tmp_path, args, message):
    assert_train_refused(image_folder, tmp_path / "r", args, message)
