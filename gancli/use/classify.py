"""``gan classify``: a model whose discriminator is a classifier (the semi-supervised GAN) names the class of image
files, folders (recursive) or globs."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from gancli.data.fileplan import expand_inputs
from gancli.data.reading import InputNotes


@dataclass
class Prediction:
    path: Path
    label: str
    probability: float
    probabilities: list[float]


def classify_files(model, inputs: list[str], batch_size: int = 256, notes=None) \
        -> tuple[list[Prediction], list[tuple[Path, str]]]:
    """Predictions for every readable image, and (file, reason) for those that could not be read; ``notes`` (a
    ``gancli.data.reading.InputNotes``) hears what reading changed."""
    names = model.classifier_classes
    readable, images, skipped = [], [], []
    found = [path for path, _ in expand_inputs(inputs)]
    for start in range(0, len(found), batch_size):  # a batch at a time; one by one only where a file fails
        chunk, heard = found[start:start + batch_size], InputNotes()
        try:
            images.append(model.read_images(chunk, heard))
        except ValueError:  # a file in it is unreadable: read them one by one, skipping only that one
            for path in chunk:
                try:
                    images.append(model.read_images([path], notes))
                    readable.append(path)
                except ValueError as e:
                    skipped.append((path, str(e).removeprefix(f"{path}: ")))
        else:
            readable += chunk
            if notes is not None:
                notes.merge(heard)
    images = torch.cat(images) if images else torch.empty(0)
    predictions = []
    for start in range(0, len(images), batch_size):
        probs = model.classify(images[start:start + batch_size])
        rounded = (probs.double() * 1e4).round().div(1e4).tolist()  # 4 decimals, one pass, not one call a value
        for path, p, k in zip(readable[start:start + batch_size], rounded, probs.argmax(1).tolist()):
            predictions.append(Prediction(path, names[k] if k < len(names) else str(k), p[k], p))
    return predictions, skipped
