"""Named reference datasets for evaluation (``mnist``, ``fashion``, ``horse2zebra``, ``stacked-mnist``), found on disk.

Nothing is downloaded. A name is looked up, in order, in ``$GAN_DATA/<folder>``, ``./data/<folder>`` and
``../shared/data/<folder>``; a path to a folder works everywhere a name does.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gancli.data.reading import (
    IDX_LABELS,
    KNOWN_LABELS,
    DataError,
    ImageData,
    file_sha256,
    find_idx,
    load_image_folder,
    read_idx,
)


@dataclass(frozen=True)
class Dataset:
    name: str
    folder: str                 # folder name under a data root
    kind: str                   # "idx" or "paired-folders"
    classifier: str             # zoo classifier that judges it
    stack: int = 1              # Stacked-MNIST: digits per image, one per channel


DATASETS = {
    "mnist": Dataset("mnist", "mnist", "idx", "classifier-mnist"),
    "fashion": Dataset("fashion", "fashion-mnist", "idx", "classifier-fashion"),
    "horse2zebra": Dataset("horse2zebra", "horse2zebra", "paired-folders", "classifier-horse2zebra"),
    "stacked-mnist": Dataset("stacked-mnist", "mnist", "idx", "classifier-mnist", stack=3),
}
ALIASES = {"fashion-mnist": "fashion", "fashionmnist": "fashion", "stackedmnist": "stacked-mnist", "h2z": "horse2zebra"}


def default_judge(dataset: Dataset | None, channels: int) -> str:
    """The data set's own classifier; for other data, the grey digits' or the colour photos' one."""
    if dataset is not None:
        return dataset.classifier
    return "classifier-mnist" if channels == 1 else "classifier-horse2zebra"


def class_key(name: str) -> str:
    """A class or domain name as compared: "Ankle boot", "ankle-boot" and "ankleboot" are one."""
    return "".join(ch for ch in name.lower() if ch.isalnum())


def data_roots() -> list[Path]:
    roots = [Path(os.environ["GAN_DATA"]).expanduser()] if os.environ.get("GAN_DATA") else []
    return roots + [Path("data"), Path("..") / "shared" / "data"]


def lookup(name: str) -> Dataset | None:
    key = name.lower().strip()
    return DATASETS.get(ALIASES.get(key, key))


def find(dataset: Dataset) -> Path:
    for root in data_roots():
        if (root / dataset.folder).is_dir():
            return root / dataset.folder
    tried = ", ".join(str(r / dataset.folder) for r in data_roots())
    raise DataError(f"cannot find the {dataset.name} data (looked in {tried}); set GAN_DATA to the folder that "
                    f"holds {dataset.folder}/, or pass the folder itself")


def identify(folder: Path) -> Dataset | None:
    """Which named dataset a folder holds (an IDX folder whose label file we know, or a trainA/trainB folder)."""
    labels = find_idx(folder, IDX_LABELS) if folder.is_dir() else None
    if labels is not None:
        names = KNOWN_LABELS.get(file_sha256(labels))
        if names:
            return DATASETS["mnist" if names[0] == "0" else "fashion"]
    if folder.name == "horse2zebra" and (folder / "testA").is_dir():
        return DATASETS["horse2zebra"]
    return None


def load_idx_split(folder: Path, split: str) -> ImageData:
    """``train`` (60,000) or ``test`` (10,000) images and labels of an MNIST-family folder."""
    prefix = "train" if split == "train" else "t10k"
    images_path = find_idx(folder, f"{prefix}-images-idx3-ubyte")
    labels_path = find_idx(folder, f"{prefix}-labels-idx1-ubyte")
    if images_path is None or labels_path is None:
        raise DataError(f"{folder} lacks the {split} IDX files ({prefix}-images/labels-idx*-ubyte.gz)")
    images = torch.from_numpy(read_idx(images_path).copy())[:, None]
    labels = torch.from_numpy(read_idx(labels_path).astype(np.int64))
    names = KNOWN_LABELS.get(file_sha256(find_idx(folder, "train-labels-idx1-ubyte") or labels_path))
    return ImageData(images, labels, names or [str(i) for i in range(int(labels.max()) + 1)], source=str(folder))


def load_domain_split(folder: Path, split: str, size: int) -> tuple[ImageData, ImageData]:
    """Domain A and domain B images of a CycleGAN-style folder (``trainA``/``trainB`` or ``testA``/``testB``)."""
    a = load_image_folder(folder / f"{split}A", size, 3)
    b = load_image_folder(folder / f"{split}B", size, 3)
    return a, b


def stack_digits(data: ImageData, count: int, seed: int = 0, k: int = 3) -> ImageData:
    """Stacked-MNIST: ``count`` images whose k channels are k independently drawn digits (10**k modes).

    The label of an image is its digits read as a number (red = hundreds for k=3), so the 1000 modes are 0..999."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(len(data.images), (count, k), generator=g)
    images = data.images[idx, 0]  # (count, k, H, W)
    labels = torch.zeros(count, dtype=torch.long)
    for c in range(k):
        labels = labels * 10 + data.labels[idx[:, c]]
    return ImageData(images.contiguous(), labels, None, source=f"stacked-mnist({data.source}, seed {seed})")
