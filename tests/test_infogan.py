"""dcgan --codes K (InfoGAN, Chen et al. 2016): G draws one of K categories read from its noise, D names it back."""
import json

import pytest
import torch
from tiny_families import assert_train_refused, train_split_and_whole

import gancli
from gancli.training.trainer import Trainer, TrainOptions


def _options(data, out, **kw):
    base = dict(data=str(data), out=str(out), steps=4, batch_size=8, g_width=4, d_width=4, latent_dim=8,
                sample_every=100, checkpoint_every=2, log_every=1, device="cpu", codes=3)
    return TrainOptions(**(base | kw))


def test_codes_train_resume_exactly_and_export_a_generator_whose_category_is_read_from_z(image_folder, tmp_path):
    export, b = train_split_and_whole(lambda out, **kw: _options(image_folder, out, **kw), tmp_path)
    assert b["discriminator.classifier.weight"].shape[0] == 3  # the category head
    assert json.loads((export / "config.json").read_text())["arch_args"]["codes"] == 3

    m = gancli.load(export, device="cpu")
    assert m.sample(3, seed=0).shape == (3, 1, 28, 28)
    G = m.generator.eval()
    z = torch.randn(1, 8)
    z[0, :3] = torch.tensor([2.0, 0.5, -1.0])
    same = z.clone()
    same[0, :3] = torch.tensor([0.9, 0.1, 0.0])  # other values, the same largest entry: the same category
    other = z.clone()
    other[0, :3] = torch.tensor([0.1, 0.9, 0.0])
    with torch.no_grad():
        assert torch.equal(G(z), G(same))
        assert not torch.equal(G(z), G(other))


@pytest.mark.parametrize("args, message", [
    (["--codes", "3", "--pack", "2"], "error: --codes is for an unconditional, unpacked D: it cannot go with --pack"),
    (["--codes", "3", "--conditional"], "error: --codes is for an unconditional, unpacked D: it cannot go with "
                                        "--conditional"),
    (["--codes", "1"], "error: --codes must be 0 (off) or between 2 and 100"),
    (["--codes", "8", "--latent-dim", "8"], "error: --codes 8 needs --latent-dim above 8"),
    (["--info-weight", "5"], "error: --info-weight weighs the --codes term: give --codes K too"),
    (["--arch", "acgan", "--codes", "3"], "error: --codes is not an option of acgan"),
])
def test_codes_are_refused_in_one_line_where_they_cannot_apply(image_folder, tmp_path, args, message):
    assert_train_refused(image_folder, tmp_path / "r", args, message)


def test_a_resume_keeps_the_codes(image_folder, tmp_path):
    Trainer(_options(image_folder, tmp_path / "b", steps=2)).run()
    with pytest.raises(ValueError, match="codes"):
        Trainer(_options(image_folder, tmp_path / "b", steps=4, resume=True, codes=4))


@pytest.mark.parametrize("frozen, trained", [("lr_d", "generator"), ("lr_g", "discriminator")])
def test_the_info_term_trains_both_networks(image_folder, tmp_path, frozen, trained):
    """One step from the same start with --info-weight 0 and 1, the other network held still (a learning rate too
    small to move a float32 weight): the network left to train differs only by the info term."""
    nets = []
    for weight in (0.0, 1.0):
        t = Trainer(_options(image_folder, tmp_path / f"w{weight}", steps=1, info_weight=weight, **{frozen: 1e-30}))
        t.run()
        nets.append(t.nets[trained].state_dict())
    assert any(not torch.equal(nets[0][k], nets[1][k]) for k in nets[0] if nets[0][k].is_floating_point())


def test_the_category_head_learns_to_read_g(image_folder, tmp_path):
    t = Trainer(_options(image_folder, tmp_path / "r", steps=60, codes=2, g_width=8, d_width=8, batch_size=16,
                         lr_g=1e-3, lr_d=1e-3))
    t.run()
    acc = [json.loads(line)["code_acc"] for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert sum(acc[-10:]) / 10 > 0.9  # two categories: chance is 0.5
