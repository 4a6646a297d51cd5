"""The table of losses (gancli.families.losses): each entry's formulas, what it declares, and the promise of
docs/code.md that a new loss is one entry of the table away from `gan train --loss`."""
import json
import math

import pytest
import torch
import torch.nn.functional as F
from tiny_families import run
from typer.testing import CliRunner

from gancli.cli import app
from gancli.families import losses
from gancli.families.adversarial import AdversarialObjective
from gancli.families.losses import Loss

REAL, FAKE = [2.0, -1.0, 0.5], [-2.0, 0.5, 3.0]


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def mean(xs) -> float:
    xs = list(xs)
    return sum(xs) / len(xs)


# the papers' formulas, in plain Python on D's outputs: (D's loss, G's loss); rpgan pairs REAL[i] with FAKE[i]
FORMULAS = {
    "ns": (mean(softplus(-r) for r in REAL) + mean(softplus(f) for f in FAKE), mean(softplus(-f) for f in FAKE)),
    "minimax": (mean(softplus(-r) for r in REAL) + mean(softplus(f) for f in FAKE), -mean(softplus(f) for f in FAKE)),
    "lsgan": (0.5 * (mean((r - 1) ** 2 for r in REAL) + mean(f ** 2 for f in FAKE)),
              0.5 * mean((f - 1) ** 2 for f in FAKE)),
    "wgan-gp": (mean(FAKE) - mean(REAL), -mean(FAKE)),
    "hinge": (mean(max(0.0, 1 - r) for r in REAL) + mean(max(0.0, 1 + f) for f in FAKE), -mean(FAKE)),
    "rpgan": (mean(softplus(f - r) for r, f in zip(REAL, FAKE)), mean(softplus(r - f) for r, f in zip(REAL, FAKE))),
}


@pytest.mark.parametrize("name", list(FORMULAS))
def test_each_loss_is_its_formula(name):
    real, fake = torch.tensor(REAL), torch.tensor(FAKE)
    d, g = FORMULAS[name]
    loss = losses.get(name)
    assert loss.d(real, fake).item() == pytest.approx(d, rel=1e-6)
    assert loss.g(fake, real).item() == pytest.approx(g, rel=1e-6)
    assert losses.d_loss(name, real, fake).item() == pytest.approx(d, rel=1e-6)
    assert losses.g_loss(name, fake, real).item() == pytest.approx(g, rel=1e-6)


def test_the_table_is_the_losses_runs_were_made_with():
    """options.json keeps these names: a run resumes by them."""
    assert list(losses.LOSSES) == list(FORMULAS)
    table = {n: (l.reads_as, l.penalty, l.g_reads_real) for n, l in losses.LOSSES.items()}
    assert table == {"ns": ("probability", None, False), "minimax": ("probability", None, False),
                     "lsgan": ("target", None, False), "wgan-gp": ("score", losses.GRADIENT_PENALTY, False),
                     "hinge": ("score", None, False), "rpgan": ("score", losses.R1_R2, True)}
    assert losses.get("rpgan").needs == (losses.R1_R2, losses.REAL_OUTPUTS)
    # only probabilities go through a sigmoid when logged
    out = torch.tensor([0.0, 2.0])
    assert torch.equal(losses.get("ns").logged(out), torch.sigmoid(out))
    assert torch.equal(losses.get("hinge").logged(out), out)


def test_a_loss_that_reads_real_outputs_asks_for_them():
    with pytest.raises(ValueError, match="rpgan's generator loss needs D's outputs on the paired real images"):
        losses.g_loss("rpgan", torch.tensor(FAKE))
    with pytest.raises(ValueError, match="unknown loss 'wgan'"):
        losses.get("wgan")


def test_the_refusal_is_derived_from_the_table_and_what_the_objective_wires():
    losses.check_wired("cyclegan", "hinge", frozenset())  # a loss function and nothing more: wired everywhere
    with pytest.raises(ValueError) as e:
        losses.check_wired("cyclegan", "rpgan", frozenset())
    assert str(e.value) == ("cyclegan trains with ns, minimax, lsgan or hinge; rpgan is not wired here: it needs "
                            "zero-centred R1 and R2 penalties and D's outputs on the real batch in G's loss")
    for name in losses.LOSSES:
        losses.check_wired("dcgan", name, AdversarialObjective.wires)


# ------------------------------------------------------------------------------------------------ a new loss
def relativistic_average(real, fake):
    """RaGAN (Jolicoeur-Martineau 2019): real images judged more real than the average fake, and the reverse."""
    return F.softplus(-(real - fake.mean())).mean() + F.softplus(fake - real.mean()).mean()


RAGAN = Loss("ragan", "relativistic average", relativistic_average,
             lambda fake, real: relativistic_average(fake, real.detach()), reads_as="score", g_reads_real=True)


def test_a_new_loss_is_one_table_entry(image_folder, tmp_path, monkeypatch):
    """What docs/code.md promises: an entry in losses.LOSSES, and `gan train` lists it, takes it, and trains with it
    where the objective wires what it needs, and refuses it in one line where it does not."""
    wide = {"COLUMNS": "200"}
    assert "ragan" not in run("train", "--help").output
    assert run("train", image_folder, "--loss", "ragan", "--out", tmp_path / "no").exit_code == 2
    monkeypatch.setitem(losses.LOSSES, RAGAN.name, RAGAN)
    assert "ragan (relativistic average)" in CliRunner().invoke(app, ["train", "--help"], env=wide).output

    out = tmp_path / "ragan"
    r = run("train", image_folder, "--arch", "dcgan", "--loss", "ragan", "--out", out, "--steps", 2,
            "--batch-size", 8, "--g-width", 4, "--d-width", 4, "--latent-dim", 8, "--log-every", 2, "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert json.loads((out / "options.json").read_text())["loss"] == "ragan"
    (row,) = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert math.isfinite(row["loss_d"]) and math.isfinite(row["loss_g"]) and "value" not in row  # scores: no V(D,G)
    assert "raw scores" in (out / "export" / "README.md").read_text()

    # cyclegan's loop gives G's loss no real batch: refused before anything is read or written
    r = run("train", image_folder, image_folder, "--arch", "cyclegan", "--loss", "ragan", "--out", tmp_path / "c",
            "--steps", 1)
    assert r.exit_code == 2 and r.output.startswith("error: cyclegan trains with ns, minimax, lsgan or hinge; ragan "
                                                    "is not wired here"), r.output
    assert len(r.output.strip().splitlines()) == 1 and not (tmp_path / "c").exists()
