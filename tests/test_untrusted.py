"""Untrusted input: a zip of training images, and a model folder (from the Hub or anywhere). Whatever it holds, the
user gets one `error:` line (exit 2) or the bad part skipped and counted, never a traceback, a stall, a huge
allocation or a file read from outside the folder."""
import io
import json
import subprocess
import sys
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest
from PIL import Image

from gancli import data as data_module
from gancli.data import load_data


def _png(value: int, size: int = 28, text: bytes = b"") -> bytes:
    buf = io.BytesIO()
    info = None
    if text:
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        info.add_text("comment", text.decode())
    Image.fromarray(np.full((size, size), value, np.uint8)).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def _zip(path, entries: dict[str, bytes], compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, payload in entries.items():
            z.writestr(name, payload)
    return path


def _gan(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "gancli", *map(str, args)], capture_output=True, text=True, cwd=cwd)


# ------------------------------------------------------------------------------------------------ training zips
def _flip_central_flag(path, name: str, bit: int):
    """Set a general-purpose flag bit of one entry in the zip's central directory (zipfile cannot write encrypted
    entries; the flag is what readers go by)."""
    raw = bytearray(path.read_bytes())
    at = raw.index(b"PK\x01\x02")  # the central directory's first entry
    while True:
        name_len = int.from_bytes(raw[at + 28:at + 30], "little")
        extra_len = int.from_bytes(raw[at + 30:at + 32], "little")
        comment_len = int.from_bytes(raw[at + 32:at + 34], "little")
        if raw[at + 46:at + 46 + name_len] == name.encode():
            raw[at + 8] |= bit
            break
        at += 46 + name_len + extra_len + comment_len
    path.write_bytes(raw)


def test_zip_with_a_corrupt_and_an_encrypted_entry_trains_on_the_rest(tmp_path):
    archive = _zip(tmp_path / "d.zip", {f"ok{i}.png": _png(20 * i) for i in range(4)}
                   | {"bad.png": _png(200), "secret.png": _png(100)})
    raw = bytearray(archive.read_bytes())
    raw[raw.index(b"IDAT", raw.index(b"bad.png")) + 6] ^= 0xFF  # one flipped byte: the entry's CRC no longer matches
    archive.write_bytes(raw)
    _flip_central_flag(archive, "secret.png", 0x1)

    loaded = load_data(archive)
    assert len(loaded) == 4
    reasons = dict(loaded.skipped)
    assert "CRC" in reasons["bad.png"] and "encrypted" in reasons["secret.png"]

    r = _gan("train", archive, "--arch", "dcgan", "--steps", "1", "--batch-size", "4", "--g-width", "4",
             "--d-width", "4", "--latent-dim", "8", "--device", "cpu", "--out", tmp_path / "run")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "skipped 2 unreadable file(s)" in r.stderr + r.stdout
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "bad.png" in log and "secret.png" in log


def test_absolute_and_parent_paths_in_a_zip_are_skipped_not_read(tmp_path):
    archive = _zip(tmp_path / "d.zip", {"a.png": _png(10), "b.png": _png(30), "/etc/x.png": _png(250),
                                         "../up.png": _png(250), "C:/win.png": _png(250)})
    loaded = load_data(archive)
    assert len(loaded) == 2 and int(loaded.images.max()) < 250
    assert sorted(name for name, _ in loaded.skipped) == ["../up.png", "/etc/x.png", "C:/win.png"]


def test_zip_bomb_is_refused_before_it_is_inflated(tmp_path):
    """64 MiB of zeros named .png deflate to 64 KiB; reading it whole took the uncompressed size (twice)."""
    archive = _zip(tmp_path / "bomb.zip", {"a.png": _png(10), "b.png": _png(30), "bomb.png": bytes(64 << 20)},
                   zipfile.ZIP_DEFLATED)
    assert archive.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        loaded = load_data(archive)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(loaded) == 2 and [n for n, _ in loaded.skipped] == ["bomb.png"]
    assert peak < 16 << 20, f"peak {peak / 2**20:.0f} MiB"


def test_zip_entry_declaring_more_bytes_than_the_pixel_limit_allows_is_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(data_module, "MAX_PIXELS", 64 * 64)  # 16 KiB for an entry: a 28x28 PNG needs ~100 bytes
    archive = _zip(tmp_path / "d.zip", {"a.png": _png(10), "padded.png": _png(30, text=b"x" * (64 << 10))})
    loaded = load_data(archive)
    assert len(loaded) == 1
    assert [n for n, _ in loaded.skipped] == ["padded.png"] and "declares" in loaded.skipped[0][1]
