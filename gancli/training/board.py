"""``gan train --tensorboard``: the run's metrics rows and sample grids as TensorBoard events in RUN_DIR/tensorboard/,
for those who watch training in TensorBoard. metrics.jsonl stays the record; these are a view of the same numbers.

The ``tensorboard`` package is optional (``pip install tensorboard``); it is imported only when asked for.
"""
from __future__ import annotations

from pathlib import Path

INSTALL = "pip install tensorboard  (in a gancli checkout: pip install '.[tensorboard]')"


def check_installed():
    """Say at once, before any training, that --tensorboard cannot work here."""
    try:
        import tensorboard  # noqa: F401  (torch.utils.tensorboard imports it; a missing one is named here)
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise ValueError(f"--tensorboard needs the tensorboard package: {INSTALL}") from None


class TensorBoard:
    def __init__(self, folder: Path, step: int):
        from torch.utils.tensorboard import SummaryWriter

        # A resumed run continues from its checkpoint at ``step`` (0 too): events an interrupted session wrote after
        # it are purged from view, as metrics.jsonl drops its rows after that step.
        self.writer = SummaryWriter(str(folder), purge_step=step + 1)

    def scalars(self, row: dict):
        """One metrics.jsonl row: training rows as train/KEY, evaluations as eval/KEY, at the row's step."""
        section = row.get("event") or "train"
        for key, value in row.items():
            if key not in ("step", "event") and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(f"{section}/{key}", value, row["step"])
        self.writer.flush()  # a crash or Ctrl-C loses nothing that metrics.jsonl holds

    def grid(self, picture, step: int):
        """A sample grid (a PIL image)."""
        import numpy as np

        self.writer.add_image("samples", np.asarray(picture.convert("RGB")), step, dataformats="HWC")
        self.writer.flush()

    def close(self):
        self.writer.close()
