"""Small classifiers that double as offline feature extractors for FID/KID and as judges of what a GAN draws.

Every FID tool that downloads Inception weights at run time breaks on a plane. Ours ships its judges in the zoo
(``classifier-mnist``, ``classifier-fashion``, ``classifier-horse2zebra``): safetensors + config.json like any model,
trained by this module on the shared data, with their test accuracy in their card. Retrain one with

    python -m gancli.quality.judges mnist --out zoo/classifier-mnist

Feature distances are comparable only under the same extractor: results always name it.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gancli.store import hub
from gancli.version import __version__

TASK = "classifier"


class Classifier(nn.Module):
    """VGG-style: blocks of (3x3 conv, BN, ReLU) x ``convs`` then 2x2 max-pool; global average pool; a feature layer
    of ``num_features`` units (the embedding used for FID); a linear head. Input: (N, channels, size, size) in [-1, 1]."""

    def __init__(self, num_classes: int, channels: int = 1, image_size: int = 28, widths=(32, 64, 128),
                 convs: int = 2, num_features: int = 128, dropout: float = 0.3):
        super().__init__()
        self.channels, self.image_size, self.num_features = channels, image_size, num_features
        layers, c_in = [], channels
        for i, width in enumerate(widths):
            for _ in range(convs):
                layers += [nn.Conv2d(c_in, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
                c_in = width
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
        self.body = nn.Sequential(*layers)
        self.embed = nn.Sequential(nn.Linear(c_in, num_features), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(num_features, num_classes))

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Any (N, C, H, W) in [-1, 1] -> this network's channels and size (grey = luminance; grey -> RGB repeats)."""
        x = images.float()
        if x.shape[1] != self.channels:
            if self.channels == 1:
                x = (x * torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
            else:
                x = x.expand(-1, self.channels, -1, -1)
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", antialias=True,
                              align_corners=False)
        return x

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.embed(self.body(self.prepare(images)).mean((2, 3)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


class Judge:
    """A loaded classifier with its config: batched, device-aware ``embed`` / ``predict`` on CPU tensors."""

    def __init__(self, net: Classifier, config: dict, device: torch.device, source: str = ""):
        self.net, self.config, self.device, self.source = net.to(device).eval(), config, device, source

    @property
    def name(self) -> str:
        return self.config.get("name", "classifier")

    @property
    def class_names(self) -> list[str]:
        return self.config["class_names"]

    @property
    def num_features(self) -> int:
        return self.net.num_features

    @torch.inference_mode()
    def run(self, images: torch.Tensor, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
        """(features, logits) for images in [-1, 1] (a uint8 tensor is read as [0, 255])."""
        feats, logits = [], []
        for batch in images.split(batch_size):
            x = batch.to(self.device)
            x = x.float() / 127.5 - 1 if batch.dtype == torch.uint8 else x
            f = self.net.features(x)
            feats.append(f.float().cpu())
            logits.append(self.net.head(f).float().cpu())
        if not feats:
            return torch.empty(0, self.num_features), torch.empty(0, len(self.class_names))
        return torch.cat(feats), torch.cat(logits)

    def embed(self, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        return self.run(images, batch_size)[0]

    def predict(self, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        return self.run(images, batch_size)[1].argmax(1)


def load_judge(name: str | Path, device: str | torch.device = "cpu") -> Judge:
    """A zoo classifier (``classifier-mnist``), a local folder or ``owner/repo[@revision]``."""
    from gancli.devices import resolve_device
    from gancli.store.weights import WeightsError, load_networks

    resolved = hub.resolve(str(name))
    config = hub.read_config(resolved.path)
    if config.get("task") != TASK:
        raise WeightsError(f"{name} is not a classifier (its task is {config.get('task', 'unconditional')})")
    net = load_networks(resolved.path, config, lambda **args: {"": Classifier(**args)}, {""}, schema=Classifier)[""]
    return Judge(net, config, resolve_device(device), source=f"{resolved.source}:{resolved.path}")


# ------------------------------------------------------------------------------------------------ training
RECIPES = {
    # dataset: architecture, epochs, batch, peak learning rate, augmentation (shift in pixels, mirror)
    "mnist": {"arch": {"channels": 1, "image_size": 28, "widths": [32, 64, 128], "convs": 2}, "epochs": 3,
              "batch": 128, "lr": 2e-3, "shift": 2, "mirror": False},
    "fashion": {"arch": {"channels": 1, "image_size": 28, "widths": [32, 64, 128], "convs": 2}, "epochs": 6,
                "batch": 128, "lr": 2e-3, "shift": 2, "mirror": True},
    "horse2zebra": {"arch": {"channels": 3, "image_size": 64, "widths": [32, 64, 128, 256], "convs": 1},
                    "epochs": 25, "batch": 32, "lr": 2e-3, "shift": 6, "mirror": True},
}


def _augment(x: torch.Tensor, shift: int, mirror: bool, g: torch.Generator) -> torch.Tensor:
    """Random translation by up to ``shift`` pixels (reflect padding) and, optionally, horizontal flips."""
    n, _, h, w = x.shape
    padded = F.pad(x, (shift,) * 4, mode="reflect" if shift < h else "replicate")
    dx, dy = torch.randint(0, 2 * shift + 1, (2, n), generator=g).tolist()
    x = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])
    if mirror:
        flip = torch.rand(n, generator=g) < 0.5
        x[flip] = x[flip].flip(-1)
    return x


def load_training_data(dataset: str, data_dir: Path | None, size: int):
    """((train images, labels), (test images, labels), class names) as uint8 / int64 tensors."""
    from gancli.data import datasets
    ds = datasets.lookup(dataset)
    folder = Path(data_dir) if data_dir else datasets.find(ds)
    if ds.kind == "idx":
        train, test = datasets.load_idx_split(folder, "train"), datasets.load_idx_split(folder, "test")
        return (train.images, train.labels), (test.images, test.labels), train.class_names
    domain_names = ["horse", "zebra"] if ds.name == "horse2zebra" else ["A", "B"]
    splits = []
    for split in ("train", "test"):
        a, b = datasets.load_domain_split(folder, split, size)
        splits.append((torch.cat([a.images, b.images]),
                       torch.cat([torch.zeros(len(a), dtype=torch.long), torch.ones(len(b), dtype=torch.long)])))
    return splits[0], splits[1], domain_names


@torch.no_grad()
def accuracy(net: Classifier, images: torch.Tensor, labels: torch.Tensor, num_classes: int) -> tuple[float, list[float]]:
    net.eval()
    pred = torch.cat([net(b.float() / 127.5 - 1).argmax(1) for b in images.split(1000)])
    per_class = [float((pred[labels == c] == c).float().mean()) for c in range(num_classes)]
    return float((pred == labels).float().mean()), per_class


def train_classifier(dataset: str, out: Path, data_dir: Path | None = None, epochs: float | None = None,
                     seed: int = 0, limit: int | None = None, log=print) -> dict:
    """Train the recipe for ``dataset`` and write a zoo folder; returns its config (with test accuracy)."""
    from gancli.store.weights import write_folder

    recipe = RECIPES[dataset]
    epochs = epochs if epochs is not None else recipe["epochs"]
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    load_size = recipe["arch"]["image_size"]
    (train_x, train_y), (test_x, test_y), names = load_training_data(dataset, data_dir, load_size)
    if limit:
        train_x, train_y = train_x[:limit], train_y[:limit]
    net = Classifier(num_classes=len(names), **recipe["arch"])
    steps = max(1, math.ceil(epochs * len(train_x) / recipe["batch"]))
    opt = torch.optim.AdamW(net.parameters(), lr=recipe["lr"], weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe["lr"], total_steps=steps)
    t0, step = time.time(), 0
    while step < steps:
        net.train()
        for idx in torch.randperm(len(train_x), generator=g).split(recipe["batch"]):
            if step >= steps:
                break
            x = _augment(train_x[idx].float() / 127.5 - 1, recipe["shift"], recipe["mirror"], g)
            loss = F.cross_entropy(net(x), train_y[idx], label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 200 == 0 or step == steps:
                log(f"step {step}/{steps}  loss {loss.item():.4f}  {time.time() - t0:.0f} s")
    acc, per_class = accuracy(net, test_x, test_y, len(names))
    log(f"test accuracy {acc:.4f}")
    config = {
        "gan_version": __version__, "name": out.name, "task": TASK, "architecture": TASK,
        "arch_args": {"num_classes": len(names), **recipe["arch"], "num_features": net.num_features},
        "image_size": recipe["arch"]["image_size"], "channels": recipe["arch"]["channels"], "class_names": names,
        "dataset": dataset, "test_accuracy": round(acc, 4),
        "test_accuracy_per_class": {n: round(a, 4) for n, a in zip(names, per_class)},
        "training": {"command": f"python -m gancli.quality.judges {dataset} --out {out}", "epochs": epochs,
                     "steps": steps, "train_images": len(train_x), "test_images": len(test_x), "seed": seed,
                     "seconds": round(time.time() - t0), "torch": torch.__version__,
                     "device": f"cpu ({torch.get_num_threads()} threads)", "platform": platform.platform()},
    }
    write_folder(out, net.state_dict(), config, card=_card(config))
    return json.loads((out / hub.CONFIG_NAME).read_text())


def _card(config: dict) -> str:
    t = config["training"]
    per = ", ".join(f"{n} {a:.1%}" for n, a in config["test_accuracy_per_class"].items())
    return f"""---
license: mit
library_name: gancli
tags:
- gancli
- image-classification
- fid
datasets:
- {config['dataset']}
pipeline_tag: image-classification
---

# {config['name']}

A small CNN classifier of {config['image_size']}x{config['image_size']}x{config['channels']} {config['dataset']} images
({', '.join(config['class_names'])}), shipped so that `gan eval` works offline: its
{config['arch_args']['num_features']}-unit feature layer is the embedding for Fréchet distance, KID and precision/recall,
and its predictions judge which classes a generator draws.

**Test accuracy: {config['test_accuracy']:.2%}** on {t['test_images']:,} held-out test images ({per}).

Feature distances (FID, KID) measured with this network are comparable with each other, not with Inception FID
published elsewhere; `gan eval --inception-weights FILE` computes the usual Inception FID.

## Training

```bash
{t['command']}
```

{t['steps']} steps ({t['epochs']} epochs over {t['train_images']:,} images), AdamW with a one-cycle schedule, label
smoothing 0.05, random shifts{' and mirroring' if RECIPES[config['dataset']]['mirror'] else ''}; {t['seconds']} s on
{t['device']}, torch {t['torch']}, seed {t['seed']}.
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description="Train a zoo classifier / feature extractor for `gan eval`.")
    ap.add_argument("dataset", choices=sorted(RECIPES))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--data", type=Path, help="dataset folder (default: found like `gan eval --real NAME`)")
    ap.add_argument("--epochs", type=float)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    config = train_classifier(args.dataset, args.out, args.data, args.epochs, args.seed)
    print(f"wrote {args.out}: test accuracy {config['test_accuracy']:.2%}")


if __name__ == "__main__":
    main()
