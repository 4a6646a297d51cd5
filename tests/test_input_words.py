"""Inputs that cannot be read are said in words, not exception class names; what reading changed about an input
(an animation's other frames, transparency) is said once, in one line a kind."""
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image
from tiny_families import run

ROOT = Path(__file__).resolve().parents[1]


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height pixels (and holds none): what a decompression bomb looks like."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IEND", b""))
    return path


def test_unreadable_inputs_are_said_in_words(tmp_path):
    bomb = png_claiming(tmp_path / "bomb.png", 20000, 20000)
    cut = tmp_path / "cut.png"
    cut.write_bytes((ROOT / "gancli" / "demo" / "examples" / "bag.png").read_bytes()[:300])
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    good = ROOT / "gancli" / "demo" / "examples" / "bag.png"
    r = run("translate", "discogan-bags2shoes", bomb, cut, text, good, "--outdir", tmp_path / "out")
    assert r.exit_code == 0, r.output
    assert "bomb.png: claims 400,000,000 pixels, over the 179-megapixel limit" in r.output
    assert "cut.png: the file ends early" in r.output
    assert "notes.png: not an image" in r.output
    assert "Error" not in r.output and "(OSError)" not in r.output


def test_an_animation_and_transparency_are_said_once(tmp_path):
    rng = np.random.default_rng(0)
    frame = Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    for i in range(2):
        frame.save(tmp_path / f"walk{i}.gif", save_all=True, append_images=[frame.rotate(90)], duration=100)
    Image.fromarray(rng.integers(0, 255, (32, 32, 4), dtype=np.uint8)).save(tmp_path / "glass.png")
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "plain.png")
    (tmp_path / "broken.png").write_text("not an image")  # in the same batch: it is read again file by file
    r = run("classify", "ssgan-mnist", tmp_path / "walk0.gif", tmp_path / "walk1.gif", tmp_path / "glass.png",
            tmp_path / "plain.png", tmp_path / "broken.png")
    assert r.exit_code == 0 and "skipped" in r.output and "broken.png" in r.output, r.output
    notes = [line for line in r.output.splitlines() if line.startswith("note:")]
    assert notes == ["note: 2 inputs (walk0.gif, walk1.gif) are animated: the first frame of each is used",
                     "note: glass.png is transparent in places: laid on white"], r.output
