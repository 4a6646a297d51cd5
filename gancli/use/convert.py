"""``gan convert``: published PyTorch generator checkpoints (``.pth``) into our model folder layout.

Each family that can read published weights says how in its own ``convert`` (cyclegan: the reference
implementation's ResNet generators; dcgan: the PyTorch DCGAN example's ``netG``); files are read with
``torch.load(weights_only=True)`` (``gancli.store.weights.read_state_dict``), so nothing in them runs.
"""
from __future__ import annotations

from pathlib import Path

from gancli.families import catalog
from gancli.store.weights import load_strict
from gancli.use.model import GANModel
from gancli.version import __version__


def converters() -> list[str]:
    return sorted(name for name, f in catalog.all_families().items() if f.convert is not None)


def convert(files: list[Path], arch: str, name: str | None = None, **options) -> GANModel:
    """Read ``files`` as published ``arch`` checkpoints; ``options`` are the family's (cyclegan: domains,
    direction). Returns the model, loaded with strict key and shape checks, without a discriminator."""
    family = catalog.get(arch)
    if family.convert is None:
        raise ValueError(f"gan convert reads {', '.join(converters())} checkpoints, not {arch!r}")
    config, state = family.convert([Path(f) for f in files], name=name,
                                   **{k: v for k, v in options.items() if v is not None})
    config = {"gan_version": __version__} | config
    model = GANModel.from_config(config)
    for net_name in sorted({k.split(".", 1)[0] for k in state}):
        load_strict(model.generator if net_name == "generator" else model.others[net_name], state,
                    net_name + ".", ", ".join(map(str, files)))
    model.discriminator = None
    return model


def card(model: GANModel, command: str) -> str:
    cfg = model.config
    lines = ["---", "license: other", "library_name: gancli", "tags:", "- gan", "- gancli", f"- {cfg['architecture']}",
             "---", "", f"# {cfg['name']}", "",
             f"Converted with gan {__version__} from {', '.join(cfg['converted_from'])} "
             f"(a published PyTorch checkpoint; check its license).", "", "```bash", command, "```"]
    return "\n".join(lines) + "\n"
