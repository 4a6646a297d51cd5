"""What `gan demo`'s page asks of the library, without Gradio: the models on offer, their controls, uploads, and the
pictures (drawn by the same functions as the commands, so the page and the CLI give the same pixels)."""
from __future__ import annotations

import base64
import re
import tempfile
import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from gancli.store import hub

MAX_UPLOAD_BYTES = 20 << 20  # an upload larger than this is refused by the server before it reaches us
TRANSLATE_PIXELS = 2048 * 2048  # a page request is one image; larger ones are for `gan translate`, in batches
UPSCALE_PIXELS = 1024 * 1024  # x4: a 16-megapixel output (48 MB), which the browser still shows
MAX_CLASSIFY_FILES = 64
MAX_GRID = 64
EXAMPLES = Path(__file__).parent / "examples"  # MNIST / Fashion-MNIST test digits and clothes, horse2zebra photos


@dataclass
class Entry:
    """A model on offer, known from its config.json and family: nothing is loaded until it is used."""
    name: str
    folder: Path
    config: dict

    @cached_property
    def family(self):
        from gancli.families import catalog
        return catalog.get(self.config["architecture"])

    @property
    def kind(self) -> str:
        """sample, translate or upscale: what the page's main panel does with it."""
        return self.family.model_class.image_operation or "sample"

    def can(self, operation: str) -> bool:
        """Whether its family's model class brings ``operation`` (style_mix, classify...)."""
        return any(operation in a.operations for a in self.family.model_class.abilities)

    def takes(self, option: str) -> bool:
        """Whether its family declares the use-time option ``option`` (truncation, text, stage...)."""
        return any(o.name == option for a in self.family.model_class.abilities for o in a.options)

    @property
    def classes(self) -> list[str]:
        k = (self.config.get("arch_args") or {}).get("num_classes") or 0
        return list(self.config.get("class_names") or [str(i) for i in range(k)])

    @property
    def domains(self) -> list[str]:
        return list(self.config.get("domains") or ["A", "B"])

    def card(self) -> str:
        """Its model card (README.md) without the YAML front matter, its figures inline (as data URLs: the page
        serves no files from the model's folder)."""
        path = self.folder / hub.CARD_NAME
        text = path.read_text(errors="replace") if path.is_file() else f"# {self.name}\n\n(no model card)"
        if text.startswith("---"):
            text = text.split("---", 2)[-1]
        return re.sub(r"!\[([^\]]*)\]\(([^)\s]+\.png)\)", lambda m: self._figure(m[1], m[2]), text).strip()

    def _figure(self, alt: str, name: str) -> str:
        path = (self.folder / name).resolve()
        if path.parent != self.folder.resolve() or not path.is_file() or path.stat().st_size > 2 << 20:
            return f"({alt}: {name})"
        return f"![{alt}](data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()})"


class Models:
    """The models on offer (the zoo's, and ``extra``: a folder, run or Hub name) and the loaded ones, each loaded
    once, when first used (a lock per model: two requests wait for one load)."""

    def __init__(self, extra: str | None = None, device: str = "auto"):
        self.device, self.loaded, self.locks, self.guard = device, {}, {}, threading.Lock()
        self.entries: dict[str, Entry] = {}
        for name in hub.zoo_names():
            folder = hub.zoo_dir() / name
            config = hub.read_config(folder)
            published = hub.has_weights(folder) or (config.get("hub") or {}).get("repo")
            if config.get("task") != "classifier" and published:  # classifiers are eval's judges
                self.entries[name] = Entry(name, folder, config)
        self.first = None
        if extra is not None:
            resolved = hub.resolve(extra)  # a bad name is one line before the page starts
            config = hub.read_config(resolved.path)
            if config.get("task") == "classifier":
                raise ValueError(f"{extra} is a classifier (a judge for `gan eval`), not a model the page shows")
            self.first = extra if extra in self.entries else str(extra)
            self.entries.setdefault(self.first, Entry(self.first, resolved.path, config))
        self.first = self.first or ("dcgan-mnist" if "dcgan-mnist" in self.entries else next(iter(self.entries), None))
        self.scratch = Path(tempfile.mkdtemp(prefix="gan-demo-"))  # animations; Gradio copies what it serves

    def entry(self, name: str) -> Entry:
        if name not in self.entries:
            raise LookupError(f"unknown model {name!r}: pick one from the list")
        return self.entries[name]

    def get(self, name: str):
        self.entry(name)
        with self.guard:
            lock = self.locks.setdefault(name, threading.Lock())
        with lock:
            if name not in self.loaded:
                from gancli.use.model import load

                self.loaded[name] = load(name, self.device)
            return self.loaded[name]

    def warm(self, name: str):
        """Start loading ``name`` in the background (the page asks when it is picked): errors wait for its use."""
        def load():
            try:
                self.get(name)
            except Exception:  # noqa: BLE001 - said when the model is used
                pass

        threading.Thread(target=load, daemon=True).start()


def read_upload(path: str | Path, max_pixels: int):
    """An uploaded file as a picture, or a one-line ValueError: not an image, or more than ``max_pixels`` (read from
    the header, before decoding)."""
    from PIL import Image

    from gancli.data.reading import open_image

    name = Path(path).name
    try:
        with Image.open(path) as im:
            w, h = im.size
    except Exception:  # noqa: BLE001 - whatever PIL makes of a non-image
        raise ValueError(f"{name} is not an image the page can read (png, jpg, webp, bmp, gif, tiff)") from None
    if w * h > max_pixels:
        raise ValueError(f"{name} is too large ({w}x{h}): the page takes at most {max_pixels:,} pixels "
                         "(the command line takes more)")
    try:
        return open_image(path)
    except ValueError as e:
        raise ValueError(f"{name}: {e}") from None


def checked_count(n, lo: int = 1, hi: int = MAX_GRID) -> int:
    if n is None or int(n) != n or not lo <= n <= hi:
        raise ValueError(f"the number of images must be a whole number from {lo} to {hi}, not {n}")
    return int(n)


def checked_seed(seed) -> int:
    from gancli.options import seed_problem

    if seed is None or int(seed) != seed or seed_problem(int(seed)):
        raise ValueError(f"the seed must be a whole number from 0 to 2**63 - 1, not {seed}")
    return int(seed)
