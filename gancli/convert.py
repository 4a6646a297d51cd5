"""Import published PyTorch generator checkpoints (``.pth``) into our model folder layout.

Files are read with ``torch.load(weights_only=True)``: tensors and plain containers only. A file that needs arbitrary
objects unpickled is refused; nothing in it runs.

- ``cyclegan``: the reference implementation's ResNet generators (``latest_net_G_A.pth`` is A->B,
  ``latest_net_G_B.pth`` is B->A). Legacy instance-norm buffers (``running_mean`` ...) are dropped.
- ``dcgan``: the generator of the classic PyTorch DCGAN example (``netG.pth``, keys ``main.N.*``).
"""
from __future__ import annotations

import pickle
import re
from pathlib import Path

import torch

import gancli
from gancli.pretrained import GANModel, WeightsError, load_strict

LEGACY_NORM = ("running_mean", "running_var", "num_batches_tracked")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise WeightsError(f"{path} holds Python objects beyond tensors and plain containers; refusing to "
                           "unpickle it (torch.load with weights_only=True rejected it)") from None
    except Exception as e:
        raise WeightsError(f"{path} is not a readable PyTorch checkpoint ({type(e).__name__}: "
                           f"{str(e).splitlines()[0][:120] if str(e) else ''})") from None
    for key in ("state_dict", "model", "netG", "generator"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path} is not a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}  # DataParallel prefixes


def cyclegan_generator_args(state: dict[str, torch.Tensor], path) -> dict:
    if "model.1.weight" not in state:
        raise WeightsError(f"{path} does not look like a CycleGAN ResNet generator (no model.1.weight)")
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"model\.(\d+)\.conv_block\.", k))}
    w = state["model.1.weight"]
    return {"channels": int(w.shape[1]), "g_width": int(w.shape[0]), "n_blocks": len(blocks)}


def convert_cyclegan(files: list[Path], domains: list[str], directions: list[str] | None = None,
                     name: str | None = None) -> GANModel:
    directions = directions or (["a2b", "b2a"] if len(files) == 2 else ["a2b"])
    if len(directions) != len(files):
        raise ValueError(f"{len(files)} file(s) but {len(directions)} direction(s): give one direction per file")
    states = []
    for f in files:
        state = {k: v for k, v in read_state_dict(f).items() if not k.endswith(LEGACY_NORM)}
        states.append((f, state, cyclegan_generator_args(state, f)))
    args = states[0][2]
    for f, _, other in states[1:]:
        if other != args:
            raise WeightsError(f"{f} has another shape ({other}) than {states[0][0]} ({args})")
    config = {"gan_version": gancli.__version__, "name": name or Path(files[0]).stem, "architecture": "cyclegan",
              "arch_args": args | {"directions": directions}, "task": "translation", "domains": domains,
              "image_size": 256, "channels": args["channels"], "latent_dim": 0,
              "converted_from": [Path(f).name for f in files]}
    model = GANModel.from_config(config)
    for direction, (f, state, _) in zip(directions, states):
        load_strict(getattr(model.generator, direction), state, "", f)
    model.discriminator = None
    return model


def convert_dcgan(path: Path, name: str | None = None) -> GANModel:
    state = read_state_dict(path)
    convs = sorted(int(m.group(1)) for k in state if (m := re.fullmatch(r"main\.(\d+)\.weight", k))
                   and state[k].dim() == 4)
    if not convs:
        raise WeightsError(f"{path} does not look like the DCGAN example's generator (no main.N.weight)")
    first, last = state[f"main.{convs[0]}.weight"], state[f"main.{convs[-1]}.weight"]
    latent, top = int(first.shape[0]), int(first.shape[1])
    image_size = 4 * 2 ** (len(convs) - 1)
    width = top // 2 ** (len(convs) - 2)
    args = {"latent_dim": latent, "image_size": image_size, "channels": int(last.shape[1]), "g_width": width,
            "d_width": width, "max_width": top}
    mapped = {f"net.{k.removeprefix('main.')}": v for k, v in state.items()}
    mapped.setdefault(f"net.{convs[-1]}.bias", torch.zeros(last.shape[1]))  # the example's last layer has no bias
    config = {"gan_version": gancli.__version__, "name": name or Path(path).stem, "architecture": "dcgan",
              "arch_args": args, "task": "unconditional", "latent_dim": latent, "image_size": image_size,
              "channels": args["channels"], "converted_from": [Path(path).name]}
    model = GANModel.from_config(config)
    load_strict(model.generator, mapped, "", path)
    model.discriminator = None
    return model


def card(model: GANModel, command: str) -> str:
    cfg = model.config
    lines = ["---", "license: other", "library_name: gancli", "tags:", "- gan", "- gancli", f"- {cfg['architecture']}",
             "---", "", f"# {cfg['name']}", "",
             f"Converted with gan {gancli.__version__} from {', '.join(cfg['converted_from'])} "
             f"(a published PyTorch checkpoint; check its license).", "", "```bash", command, "```"]
    return "\n".join(lines) + "\n"
