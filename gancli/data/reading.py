"""Training data, decoded once into one uint8 tensor (N, C, H, W) so loading never slows a training step.

Sources: a folder of images (recursive; sub-folders are class labels), a ``.zip`` of images laid out the same way,
or a folder holding the MNIST-family IDX files (``train-images-idx3-ubyte.gz`` and, optionally,
``train-labels-idx1-ubyte.gz``) such as ``../shared/data/mnist`` or ``../shared/data/fashion-mnist``.
"""
from __future__ import annotations

import gzip
import hashlib
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
IDX_IMAGES = "train-images-idx3-ubyte"
IDX_LABELS = "train-labels-idx1-ubyte"
MAX_PIXELS = 8192 * 8192  # larger files are skipped rather than decoded: guards against decompression bombs
FAR_SMALLER = 4  # an image whose shorter side is under a quarter of the data's typical one is skipped, not blown up

# Class names of the IDX label files we know, by the sha256 of the published train-labels-idx1-ubyte.gz
KNOWN_LABELS = {
    "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c": [str(i) for i in range(10)],  # MNIST
    "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845": [  # Fashion-MNIST
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
}


class DataError(ValueError):
    pass


@dataclass(frozen=True)
class SizeRule:
    """The sizes a family's networks take, for a size chosen from the data (DCGAN: 4 or 7 times a power of two)."""
    largest: Callable[[int], int]  # the largest size at most a side that the networks take
    says: str                      # the rule in words, for the note that says why the size was chosen


MAX_SIDE = 8192     # the largest --size: the side of the largest image read at all (MAX_PIXELS)
DATA_SHARE = 0.5    # of the machine's memory, the most the decoded data may take: the rest is for training


def check_fits(count: int, channels: int, size: int, source, bytes_per_pixel: int = 3):
    """Before anything is decoded: the data ``count`` images make at ``size`` (uint8, with the copies decoding and
    resizing hold at once: ``bytes_per_pixel``) must fit in half of this machine's memory. One line otherwise,
    naming the largest --size that fits."""
    from gancli.devices import machine_memory_bytes

    if size > MAX_SIDE:
        raise DataError(f"the images would be read at {size} px, larger than {MAX_SIDE} px, the largest side gan "
                        "reads: give a smaller --size (or --load-size)")
    need, have = count * channels * size * size * bytes_per_pixel, machine_memory_bytes()
    if have and need > DATA_SHARE * have:
        largest = int((DATA_SHARE * have / (count * channels * bytes_per_pixel)) ** 0.5) // 4 * 4
        raise DataError(f"--size {size}: the {count:,} images of {source} at {size}x{size} px would take "
                        f"{need / 2**30:,.1f} GB while loading, more than half of this machine's "
                        f"{have / 2**30:.1f} GB: the largest --size that fits is {largest}")


@dataclass
class ImageData:
    images: torch.Tensor                 # uint8 (N, C, H, W)
    labels: torch.Tensor | None = None   # int64 (N,)
    class_names: list[str] | None = None
    source: str = ""
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    notes: list[str] = field(default_factory=list)                # what loading decided, for the run's log

    def __len__(self):
        return len(self.images)

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def image_size(self) -> int:
        return self.images.shape[2]


def load_data(path: str | Path, size: int | None = None, channels: int | None = None,
              at_most: int | None = None, rule: SizeRule | None = None) -> ImageData:
    """Images as one uint8 batch: at ``size`` (shorter side resized, centre-cropped); without one, at the data's own
    typical size, or ``at_most`` if that is smaller (a family's size for photos: say, DCGAN's 64 px), brought down
    to a size the family's networks take (``rule``)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"training data {path} does not exist")
    if path.is_dir() and find_idx(path, IDX_IMAGES):
        data = load_idx_folder(path)
    elif path.is_dir():
        data = load_image_folder(path, size, channels, at_most, rule)
    elif path.suffix.lower() == ".zip":
        data = load_zip(path, size, channels, at_most, rule)
    else:
        raise DataError(f"training data {path} must be a folder of images, a .zip of images, "
                        "or a folder of MNIST-style IDX files")
    if size and data.image_size != size:
        check_fits(len(data), data.channels, size, path, bytes_per_pixel=6)  # float32 out, uint8 in and back
        data.images = resize_batch(data.images, size)
    if channels and data.channels != channels:
        data.images = _convert_channels(data.images, channels)
    return data


# ------------------------------------------------------------------------------------------- IDX (MNIST family)
def find_idx(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx")):
        if (folder / name).is_file():
            return folder / name
    return None


def read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read IDX file {path}: {e}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path} is truncated: header says {dims}, file holds {data.size} values")
    return data.reshape(dims)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_idx_folder(folder: Path) -> ImageData:
    images = read_idx(find_idx(folder, IDX_IMAGES))
    labels_path = find_idx(folder, IDX_LABELS)
    labels = torch.from_numpy(read_idx(labels_path).astype(np.int64)) if labels_path else None
    if labels is not None and len(labels) != len(images):
        raise DataError(f"{folder}: {len(images)} images but {len(labels)} labels")
    class_names = None
    if labels is not None:
        class_names = KNOWN_LABELS.get(file_sha256(labels_path)) or [str(i) for i in range(int(labels.max()) + 1)]
    return ImageData(torch.from_numpy(images.copy())[:, None], labels, class_names, source=str(folder))


# ------------------------------------------------------------------------------------------- image folders
def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


class InputNotes:
    """What reading the inputs of one command changed about them, said once (a line a kind), not once a file."""

    SAYS = {"animated": ("is animated: its first frame is used", "are animated: the first frame of each is used"),
            "transparent": ("is transparent in places: laid on white", "are transparent in places: laid on white")}

    def __init__(self):
        self.files: dict[str, list[str]] = {kind: [] for kind in self.SAYS}

    def add(self, kind: str, source):
        self.files[kind].append(Path(str(getattr(source, "name", source))).name)

    def merge(self, other: InputNotes):
        """What ``other`` heard, after what this one did (reads done apart, said in the inputs' order)."""
        for kind, names in other.files.items():
            self.files[kind] += names

    def lines(self) -> list[str]:
        lines = []
        for kind, names in self.files.items():
            if names:
                shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
                one, many = self.SAYS[kind]
                lines.append(f"{shown} {one}" if len(names) == 1 else f"{len(names)} inputs ({shown}) {many}")
        return lines


def unreadable(e: BaseException) -> str:
    """Why PIL could not read an image, in words rather than its exception's class name."""
    import re

    text = str(e)
    if isinstance(e, Image.DecompressionBombError):
        m = re.search(r"\((\d+) pixels\) exceeds limit of (\d+)", text)
        if m:
            return (f"claims {int(m.group(1)):,} pixels, over the {int(m.group(2)) / 1e6:.0f}-megapixel limit "
                    "(a decompression bomb, or a picture far larger than any this reads)")
        return "claims more pixels than any image this reads (a decompression bomb?)"
    if isinstance(e, UnidentifiedImageError):
        return "not an image (or in a format this cannot read: png, jpg, webp, bmp, gif, tiff)"
    if isinstance(e, EOFError) or "truncated" in text or "end of file" in text.lower():
        return "the file ends early (cut off while copying or downloading?)"
    if isinstance(e, SyntaxError):
        return f"a damaged image file ({text.splitlines()[0] if text else 'its header does not parse'})"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror.lower()
    return f"a damaged image file ({text.splitlines()[0]})" if text else "a damaged image file"


def header_size(path) -> tuple[int, int] | None:
    """(width, height) from an image file's header, without decoding it; None if it cannot be opened (commands
    then skip it). What progress bars are sized from before the work starts."""
    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
        return None


ORIENTATION = 0x0112  # the EXIF tag


def open_image(source, notes: InputNotes | None = None) -> Image.Image:
    """Decode one file (a path or a file object) to RGB or L, honouring EXIF orientation. An animation gives its
    first frame, transparency is laid on white: ``notes`` hears of both.

    Raises ValueError for anything unusable, in words: zero bytes, truncated, not an image, absurdly large."""
    return _read(source, notes)[0]


def open_scaled(source, side: int, mode: str, notes: InputNotes | None = None) -> tuple[Image.Image, tuple[int, int]]:
    """``open_image`` for a caller that will shrink the picture to ``side`` pixels on its shorter side, in ``mode``
    ("L" or "RGB"), and the file's own size (width, height). A JPEG decodes straight to less: libjpeg's DCT
    scaling by 1/2, 1/4 or 1/8 where both sides stay at least ``side`` (an average over each 8x8 block's
    share, several times faster than decoding it all), and grey without the colour conversion. The picture may
    still be larger than ``side``: the caller resizes it as it would any."""
    return _read(source, notes, mode, side)


def _read(source, notes: InputNotes | None, mode: str | None = None,
         side: int | None = None) -> tuple[Image.Image, tuple[int, int]]:
    try:
        with Image.open(source) as im:
            if im.width * im.height > MAX_PIXELS:
                raise ValueError(f"too large ({im.width}x{im.height}, over {MAX_PIXELS / 1e6:.0f} megapixels)")
            if getattr(im, "n_frames", 1) > 1 and notes is not None:
                notes.add("animated", source)
            im.seek(0)  # first frame of an animation
            own = im.size
            if im.format == "JPEG" and mode is not None:
                im.draft(mode, (side, side) if side else own)
            if im.format not in ("PNG", "BMP", "GIF") or "exif" in im.info:  # those have no orientation otherwise
                if im.getexif().get(ORIENTATION, 1) in (5, 6, 7, 8):  # a quarter turn: the sides trade places
                    own = own[::-1]
                ImageOps.exif_transpose(im, in_place=True)  # in place: an upright picture is not copied
            im.load()
    except (UnidentifiedImageError, OSError, SyntaxError, EOFError, Image.DecompressionBombError) as e:
        raise ValueError(unreadable(e)) from None
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        im = Image.fromarray((np.asarray(im, dtype=np.float64) / 257.0).clip(0, 255).astype(np.uint8))
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        if notes is not None and rgba.getchannel("A").getextrema()[0] < 255:
            notes.add("transparent", source)
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))  # transparent -> white, not black
        im = Image.alpha_composite(background, rgba)
    if im.mode in ("L", "RGB"):
        return im, own
    return (im.convert("L") if im.mode in ("1", "LA") else im.convert("RGB")), own


def fit(im: Image.Image, size: int) -> Image.Image:
    """Resize the shorter side to ``size`` and centre-crop a square."""
    if im.size == (size, size):  # the usual case for a folder of the model's own size: nothing to do
        return im
    scale = size / min(im.size)
    w, h = max(size, round(im.width * scale)), max(size, round(im.height * scale))
    im = im.resize((w, h), Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC)
    left, top = (w - size) // 2, (h - size) // 2
    return im.crop((left, top, left + size, top + size))


def read_batch(paths: list, channels: int, size: int, notes: InputNotes | None = None) -> torch.Tensor:
    """Image files as one batch in [-1, 1]: ``channels``, resized and centre-cropped to ``size`` (what a model that
    encodes or classifies real images takes). An unreadable file is a one-line error naming it."""
    batch = []
    for path in paths:
        try:
            im = open_image(path, notes)
        except (ValueError, OSError) as e:
            raise ValueError(f"{path}: {e}") from None
        mode = "L" if channels == 1 else "RGB"
        im = fit(im if im.mode == mode else im.convert(mode), size)
        a = torch.from_numpy(np.asarray(im, dtype=np.float32) / 127.5 - 1)
        batch.append(a[None] if channels == 1 else a.permute(2, 0, 1))
    return torch.stack(batch)


def load_image_folder(folder: Path, size: int | None = None, channels: int | None = None,
                      at_most: int | None = None, rule: SizeRule | None = None) -> ImageData:
    files = list_images(folder)
    if not files:
        raise DataError(f"no images found in {folder} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    if size:
        check_fits(len(files), channels or 3, size, folder)
    entries = [(f.relative_to(folder).parts, f) for f in files]
    return _decode(entries, open_image, str(folder), size, channels, at_most, rule)


def load_zip(path: Path, size: int | None = None, channels: int | None = None,
             at_most: int | None = None, rule: SizeRule | None = None) -> ImageData:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{path} is not a readable zip file ({e})") from None
    with archive:
        infos = sorted((i for i in archive.infolist() if not i.is_dir()
                        and Path(i.filename).suffix.lower() in IMAGE_SUFFIXES), key=lambda i: i.filename)
        # Entries that would land outside the folder if unpacked are not part of it: reported, never read
        unsafe = [(i.filename, "a path outside the archive's folder") for i in infos if _escapes(i.filename)]
        infos = [i for i in infos if not _escapes(i.filename)
                 and not any(p.startswith((".", "__MACOSX")) for p in Path(i.filename).parts)]
        if not infos:
            raise DataError(f"no images found in {path}" + (f" ({len(unsafe)} skipped: {unsafe[0][1]})"
                                                            if unsafe else ""))
        if size:
            check_fits(len(infos), channels or 3, size, path)
        parts = [Path(i.filename).parts for i in infos]
        # A zip of one top-level folder (the usual "zip this folder") is that folder
        if all(len(p) > 1 for p in parts) and len({p[0] for p in parts}) == 1:
            parts = [p[1:] for p in parts]
        data = _decode(list(zip(parts, infos)), lambda i: _zip_image(archive, i), str(path), size, channels,
                       at_most, rule)
    data.skipped[:0] = unsafe
    return data


def _escapes(name: str) -> bool:
    """An absolute name (``/x``, ``\\x``, ``C:x``) or one with a ``..`` part."""
    return name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") \
        or ".." in name.replace("\\", "/").split("/")


def max_entry_bytes() -> int:
    """What one zip entry may declare uncompressed: an 8-bit RGBA image at the pixel limit, stored raw. An image
    file is never larger than that in practice; a zip bomb's entry is. (A function: it follows MAX_PIXELS.)"""
    return 4 * MAX_PIXELS


def _zip_image(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Image.Image:
    """Decode one entry straight from the archive: PIL reads the header (and refuses too many pixels) before any
    pixel data is inflated, so an entry's bytes are never held in memory. Read to the end so the CRC is checked."""
    if info.flag_bits & 0x1:
        raise ValueError("encrypted (the archive needs a password)")
    if info.file_size > max_entry_bytes():
        raise ValueError(f"declares {info.file_size:,} bytes uncompressed, more than any image within the "
                         f"{MAX_PIXELS:,}-pixel limit needs")
    try:
        with archive.open(info) as f:
            im = open_image(f)
            while f.read(1 << 20):  # the CRC is compared at the end of the entry
                pass
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError) as e:
        raise ValueError(f"corrupt in the archive ({str(e).splitlines()[0] if str(e) else 'it ends early'})") \
            from None
    return im


def _decode(entries, read, source: str, size: int | None, channels: int | None,
            at_most: int | None = None, rule: SizeRule | None = None) -> ImageData:
    """``read(entry)`` decodes one entry or raises ValueError, which skips it."""
    decoded, skipped = [], []
    for parts, entry in entries:
        try:
            decoded.append((parts, read(entry)))
        except ValueError as e:
            skipped.append(("/".join(parts), str(e)))
    if not decoded:
        raise DataError(f"none of the {len(entries)} image files in {source} could be read")
    typical, how = typical_side([min(im.size) for _, im in decoded])
    small = [(p, im) for p, im in decoded if min(im.size) * FAR_SMALLER < typical]
    decoded = [(p, im) for p, im in decoded if min(im.size) * FAR_SMALLER >= typical]
    skipped += [("/".join(p), f"{im.width}x{im.height}, far smaller than the data's typical {typical} px "
                              f"(it would be blown up {(size or typical) / min(im.size):.0f}x)") for p, im in small]
    notes = []
    if size is None:
        size = typical
        if size < 4:
            example = next("/".join(p) for p, im in decoded if min(im.size) == size)
            raise DataError(f"the images in {source} are {size} px (e.g. {example}): too small to train on")
        if at_most and size > at_most:  # the time per image grows with the square of the side
            chosen = rule.largest(at_most) if rule else at_most
            notes.append(f"--size {chosen} chosen: the images are {size} px ({how}); --size {size} would take "
                         f"about {round((size / chosen) ** 2)}x the time per image")
            size = chosen
        elif rule and rule.largest(size) != size:
            notes.append(f"--size {rule.largest(size)} chosen: the images are {size} px ({how}), and {rule.says}")
            size = rule.largest(size)
        else:
            notes.append(f"default --size {size}: {how}")
    smaller = [(p, im) for p, im in decoded if min(im.size) < size]
    if smaller:
        p, im = min(smaller, key=lambda e: min(e[1].size))
        notes.append(f"{len(smaller)} image(s) smaller than {size} px are scaled up (the smallest: "
                     f"{'/'.join(p)}, {im.width}x{im.height})")
    if channels is None:
        channels = 1 if all(im.mode == "L" for _, im in decoded) else 3
    mode = "L" if channels == 1 else "RGB"
    images = torch.from_numpy(np.stack([np.asarray(fit(im.convert(mode), size)) for _, im in decoded]))
    images = images[:, None] if channels == 1 else images.permute(0, 3, 1, 2)

    # Sub-folders are classes only when every image sits in one (an all-flat folder is unlabelled).
    labels = class_names = None
    if all(len(p) > 1 for p, _ in decoded):
        class_names = sorted({p[0] for p, _ in decoded})
        index = {c: i for i, c in enumerate(class_names)}
        labels = torch.tensor([index[p[0]] for p, _ in decoded])
    return ImageData(images.contiguous(), labels, class_names, source=source, skipped=skipped, notes=notes)


def photo_side(folder: Path, most: int = 64) -> int:
    """The typical shorter side of a folder's images, read from the headers of at most ``most`` of them (cheap:
    nothing is decoded), to choose a size before the data is loaded."""
    sides = []
    for f in list_images(Path(folder))[:most]:
        try:
            with Image.open(f) as im:
                sides.append(min(im.size))
        except (UnidentifiedImageError, OSError, SyntaxError, EOFError, Image.DecompressionBombError):
            continue
    if not sides:
        raise DataError(f"no readable images in {folder}")
    return typical_side(sides)[0]


def typical_side(sides: list[int]) -> tuple[int, str]:
    """The shorter side most images share, and how it was chosen. One odd file (a 1x1 pixel) must not set the
    size of the whole data set; when no size is shared by many, the median stands for them."""
    from collections import Counter

    (side, count), = Counter(sides).most_common(1)
    if count == len(sides):
        return side, f"the shorter side of every image ({len(sides)})"
    if count * 4 >= len(sides):
        return side, f"the most common shorter side ({count} of {len(sides)} images)"
    median = sorted(sides)[(len(sides) - 1) // 2]
    return median, f"the median shorter side (sizes vary: the most common, {side} px, is {count} of {len(sides)})"


def resize_batch(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 images resized (bilinear, antialiased), as training data at ``--size`` are."""
    x = torch.nn.functional.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True,
                                        align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8)


def _convert_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    if channels == 3 and images.shape[1] == 1:
        return images.expand(-1, 3, -1, -1).contiguous()
    if channels == 1 and images.shape[1] == 3:
        weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (images.float() * weights).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    raise DataError(f"cannot convert {images.shape[1]} channels to {channels}")


def to_model_range(batch: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1]."""
    return batch.float().div_(127.5).sub_(1.0)


def split_folders(root: Path, split: str = "train") -> list[Path]:
    """The folders a data set's ``split`` (train or test) images are in: its train*/ or test*/ sub-folders when it is
    laid out as train*/ + test*/ (the CycleGAN data sets), so test images stay unseen; otherwise the folder itself."""
    subs = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    train = [p for p in subs if p.name.lower().startswith("train")]
    test = [p for p in subs if p.name.lower().startswith("test")]
    return (train if split == "train" else test) if train and test else [root]
