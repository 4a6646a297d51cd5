from dataclasses import dataclass
from pathlib import Path

"""What the family test files share: tiny recipes of every family for `gan train`, tiny saved models, and
running the CLI in-process."""
import os
import sys

import pytest
import torch
from conftest import SHARED
from PIL import Image
from typer.testing import CliRunner

from gancli.cli import app
from gancli.use.model import GANModel

runner = CliRunner()
needs_mnist = pytest.mark.skipif(not (SHARED / "mnist").is_dir(), reason="needs ../shared/data/mnist")
needs_fashion = pytest.mark.skipif(not (SHARED / "fashion-mnist").is_dir(),
                                   reason="needs ../shared/data/fashion-mnist")
CARD = "---\nlicense: mit\nlibrary_name: gancli\ntags:\n- gan\n---\n# t\n"
TINY_STYLE = {"latent_dim": 8, "image_size": 16, "channels": 1, "w_dim": 8, "mapping_layers": 2, "g_width": 4,
              "d_width": 4, "max_width": 16}
TINY_VAE = {"latent_dim": 4, "image_size": 28, "channels": 1, "width": 4, "hidden": 16}


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def train_split_and_whole(options, root, steps: int = 4, stop: int = 2):
    """Train ``options(out, steps=...)`` straight through and again stopped after ``stop`` steps and resumed; the
    two exports must hold identical weights. Returns the resumed run's export folder and its weights."""
    from safetensors.torch import load_file

    from gancli.training.trainer import Trainer

    Trainer(options(root / "whole", steps=steps)).run()
    Trainer(options(root / "split", steps=stop)).run()
    resumed = Trainer(options(root / "split", steps=steps, resume=True))
    assert resumed.step == stop
    export = resumed.run()
    whole, split = (load_file(root / n / "export" / "model.safetensors") for n in ("whole", "split"))
    assert whole.keys() == split.keys() and all(torch.equal(whole[k], split[k]) for k in whole)
    return export, split


def interrupt_at(trainer, step: int):
    """Run ``trainer`` and press Ctrl-C as it starts step ``step``: a real SIGINT, delivered to the trainer's own
    handler, which saves a checkpoint and stops."""
    import os
    import signal

    train_step = trainer.train_step

    def ctrl_c():
        if trainer.step == step:
            os.kill(os.getpid(), signal.SIGINT)
        return train_step()

    trainer.train_step = ctrl_c
    with pytest.raises(KeyboardInterrupt):
        trainer.run()


def assert_train_refused(data, out, args, message: str):
    """`gan train` with ``args`` stops before it starts: one line starting ``message``, exit 2, no run folder."""
    r = run("train", data, "--out", out, "--steps", 1, "--batch-size", 8, *args)
    assert r.exit_code == 2 and r.output.startswith(message), r.output
    assert not out.exists()


@pytest.fixture
def style_dir(tmp_path):
    """A random-weight 16 px StyleGAN whose average w is not zero, saved in zoo layout."""
    torch.manual_seed(0)
    m = GANModel.from_config({"architecture": "stylegan", "arch_args": TINY_STYLE, "latent_dim": 8,
                              "image_size": 16, "channels": 1, "name": "tiny-style", "dataset": "synthetic"})
    for p in m.generator.synthesis.parameters():
        torch.nn.init.normal_(p, 0.0, 0.5)
    m.generator.mapping.w_avg.normal_()
    return m.save_pretrained(tmp_path / "style", card=CARD, include_discriminator=False)


@pytest.fixture
def vae_dir(tmp_path):
    torch.manual_seed(0)
    m = GANModel.from_config({"architecture": "vae", "arch_args": TINY_VAE, "latent_dim": 4, "image_size": 28,
                              "channels": 1, "name": "tiny-vae", "dataset": "mnist"})
    return m.save_pretrained(tmp_path / "vae", card=CARD)




STYLE_TRAIN = ["--arch", "stylegan", "--size", "16", "--g-width", "4", "--d-width", "4", "--w-dim", "8",
               "--latent-dim", "8", "--mapping-layers", "2", "--max-width", "16", "--r1-every", "3", "--ema",
               "--batch-size", "8"]
VAE_TRAIN = ["--arch", "vae", "--latent-dim", "4", "--vae-width", "4", "--hidden", "16", "--batch-size", "8"]
DISCO_TRAIN = ["--arch", "discogan", "--domains", "ring:0,grey:1", "--size", "16", "--g-width", "4", "--d-width",
               "4", "--batch-size", "4"]
SSGAN_TRAIN = ["--arch", "ssgan", "--ssgan-net", "conv", "--labels-per-class", "3", "--g-width", "4", "--d-width",
               "4", "--latent-dim", "8", "--batch-size", "4"]
SSGAN_MLP_TRAIN = ["--arch", "ssgan", "--labels-per-class", "3", "--latent-dim", "8", "--batch-size", "4"]
DESIGN_TRAIN = ["--arch", "design", "--g-width", "4", "--d-width", "4", "--latent-dim", "8", "--batch-size", "8"]
R3GAN_TRAIN = ["--arch", "r3gan", "--latent-dim", "8", "--g-width", "4", "--d-width", "4", "--r3-blocks", "1",
               "--cardinality", "2", "--ema", "--conditional", "--batch-size", "8"]
BEGAN_TRAIN = ["--arch", "began", "--latent-dim", "4", "--g-width", "4", "--d-width", "4", "--bottleneck", "4",
               "--batch-size", "8", "--lambda-k", "0.05"]


def _cmd(data, out, steps, family_args, *extra):
    """A checkpoint every 4 steps: the kill lands between two, so the resumed run also replays steps the killed one
    had taken (and logged), which must come out the same."""
    return [sys.executable, "-m", "gancli", "train", str(data), "--out", str(out), "--steps", str(steps), "--device",
            "cpu", "--log-every", "1", "--sample-every", "1000", "--checkpoint-every", "4", *family_args, *extra]


def _final_state(run):
    state = torch.load(sorted((run / "checkpoints").glob("step-*.pt"))[-1], weights_only=True)
    return state["networks"]


def _digit_file(path, index):
    from gancli.data.datasets import load_idx_split

    image = load_idx_split(SHARED / "mnist", "test").images[index, 0].numpy()
    Image.fromarray(image).save(path)
    return path


# ------------------------------------------------------------------------------------------------ gan in-process, from a folder
@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def gan(*args, cwd) -> Ran:
    """`gan ARGS` from ``cwd``, in this process (a process per command would cost the suite a torch import each)."""
    from typer.testing import CliRunner

    from gancli.cli import app

    here = Path.cwd()
    os.chdir(cwd)
    try:
        r = CliRunner().invoke(app, [str(a) for a in args])
    finally:
        os.chdir(here)
    return Ran(r.exit_code, r.stdout, r.stderr)


def one_error(p, message: str):
    assert p.returncode == 2 and p.stderr.startswith("error: ") and p.stderr.count("\n") == 1, p.stderr
    assert message in p.stderr and "Traceback" not in p.stderr, p.stderr
