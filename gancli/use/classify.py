"""``gan classify``: a model whose discriminator is a classifier (the semi-supervised GAN) names the class of image
files, folders (recursive) or globs."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from gancli.data.fileplan import expand_inputs


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
    for path, _ in expand_inputs(inputs):
        try:
            images.append(model.read_images([path], notes)[0])
            readable.append(path)
        except ValueError as e:
            skipped.append((path, str(e).removeprefix(f"{path}: ")))
    predictions = []
    for start in range(0, len(images), batch_size):
        probs = model.classify(torch.stack(images[start:start + batch_size]))
        for path, p in zip(readable[start:start + batch_size], probs):
            k = int(p.argmax())
            predictions.append(Prediction(path, names[k] if k < len(names) else str(k), round(float(p[k]), 4),
                                          [round(float(v), 4) for v in p]))
    return predictions, skipped
