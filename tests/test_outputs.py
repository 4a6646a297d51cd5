"""Nothing the user had is lost to an output: a device file or FIFO is written into, never replaced; a symlink is
written through; an output is never one of the command's own inputs; two inputs never share one output; a write
that fails (a full disk) is one line and leaves no partial file; `--json -` and `--csv -` write to stdout."""
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


from tiny_families import gan, one_error  # noqa: E402


def gan_process(*args, cwd) -> subprocess.CompletedProcess:
    """`gan ARGS` as its own process: where its real standard output is the point."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="100")
    return subprocess.run([sys.executable, "-m", "gancli", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=120)


def picture(path: Path, w=24, h=20, seed=0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
    return path


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
def test_a_device_file_is_written_into_not_replaced(tmp_path):
    os.mknod(tmp_path / "n.png", 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # /dev/null's numbers
    p = gan("sample", "dcgan-mnist", "-n", 4, "-o", "n.png", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert stat.S_ISCHR((tmp_path / "n.png").lstat().st_mode)


def test_a_fifo_is_streamed_into(tmp_path):
    os.mkfifo(tmp_path / "pipe.json")
    reader = subprocess.Popen(["cat", str(tmp_path / "pipe.json")], stdout=subprocess.PIPE)
    p = gan("toy", "1d", "--steps", 20, "--json", "pipe.json", cwd=tmp_path)
    got = reader.communicate(timeout=60)[0]
    assert p.returncode == 0, p.stderr
    assert json.loads(got)["kind"] == "1d" and stat.S_ISFIFO((tmp_path / "pipe.json").lstat().st_mode)


def test_a_symlink_is_written_through(tmp_path):
    (tmp_path / "link.png").symlink_to("real.png")
    p = gan("sample", "dcgan-mnist", "-n", 4, "-o", "link.png", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "link.png").is_symlink() and Image.open(tmp_path / "real.png").size[0] > 28


def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path):
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    one_error(gan("sample", "dcgan-mnist", "-n", 4, "-o", "/dev/full", cwd=tmp_path),
              "cannot write /dev/full: the disk is full")
    picture(tmp_path / "d.png", 28, 28)
    one_error(gan("classify", "ssgan-mnist", "d.png", "--csv", "/dev/full", cwd=tmp_path),
              "cannot write /dev/full: the disk is full")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.png"]


def test_json_and_csv_dash_write_to_stdout_alone(tmp_path):
    for i in range(3):
        picture(tmp_path / f"d{i}.png", 28, 28, i)
    p = gan_process("classify", "ssgan-mnist", "d0.png", "d1.png", "d2.png", "--json", "-", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert [r["file"] for r in json.loads(p.stdout)] == ["d0.png", "d1.png", "d2.png"]
    p = gan_process("classify", "ssgan-mnist", "d0.png", "d1.png", "--csv", "-", cwd=tmp_path)
    assert p.returncode == 0 and p.stdout.splitlines()[0] == "file,class,probability" and len(p.stdout.splitlines()) == 3
    one_error(gan("classify", "ssgan-mnist", "d0.png", "--csv", "-", "--json", "-", cwd=tmp_path),
              "would both write to standard output")


def test_an_output_is_never_an_input(tmp_path):
    one = picture(tmp_path / "one.png")
    before = one.read_bytes()
    one_error(gan("upscale", "srresnet-x4", "one.png", "-o", "one.png", cwd=tmp_path), "is the input itself")
    (tmp_path / "same.png").symlink_to("one.png")
    one_error(gan("upscale", "srresnet-x4", "one.png", "-o", "same.png", cwd=tmp_path), "is the input itself")
    picture(tmp_path / "dir" / "x.png")
    one_error(gan("upscale", "srresnet-x4", "dir", "--outdir", "dir", cwd=tmp_path), "choose another folder")
    assert one.read_bytes() == before and sorted(p.name for p in (tmp_path / "dir").iterdir()) == ["x.png"]


def test_an_outdir_inside_the_inputs_is_not_read_again(tmp_path):
    picture(tmp_path / "dir" / "x.png")
    for run in (1, 2):
        p = gan("upscale", "srresnet-x4", "dir", "--outdir", "dir/big", cwd=tmp_path)
        assert p.returncode == 0, p.stderr
        assert "upscaled 1 image(s)" in p.stdout
    assert "left out 1 earlier output(s)" in p.stdout
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.png")) == ["dir/big/x.png", "dir/x.png"]


def test_two_inputs_with_one_name_get_two_outputs(tmp_path):
    picture(tmp_path / "a" / "x.png", seed=1)
    picture(tmp_path / "b" / "x.png", seed=2)
    p = gan("upscale", "srresnet-x4", "a/x.png", "b/x.png", "--outdir", "out", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "upscaled 2 image(s)" in p.stdout and "1 renamed" in p.stdout
    assert "renamed: b/x.png -> out/x-2.png" in p.stderr
    a, b = (np.asarray(Image.open(tmp_path / "out" / n)) for n in ("x.png", "x-2.png"))
    assert a.shape == b.shape == (80, 96, 3) and not np.array_equal(a, b)


# ---------------------------------------------------------------------------------------- small and strange outputs
def test_a_run_refused_before_training_leaves_no_folders(tmp_path):
    data = tmp_path / "data"
    for dom in ("trainA", "trainB"):
        picture(data / dom / "0.png", 40, 40)
        picture(data / dom / "1.png", 40, 40, 1)
    one_error(gan("train", data, "--arch", "cyclegan", "--size", "16", "--out", "runs/x", cwd=tmp_path),
              "needs crops of at least 24 px")
    assert not (tmp_path / "runs").exists()


def test_json_to_dev_stdout_reaches_the_pipe(tmp_path):
    p = gan_process("toy", "1d", "--steps", 20, "--json", "/dev/stdout", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert '"kind": "1d"' in p.stdout and list(tmp_path.iterdir()) == []


def test_review_cases_lose_nothing(tmp_path):
    """A file named twice is one input; a user's file with a renamed output's name is kept; a link with an
    output's name pointing at another input is refused, not written through."""
    a = picture(tmp_path / "a.png")
    p = gan("upscale", "srresnet-x4", "a.png", "./a.png", cwd=tmp_path)
    assert p.returncode == 0 and "upscaled 1 image(s)" in p.stdout, p.stderr
    e = tmp_path / "e"
    picture(e / "x.png", 8, 8, 1)
    picture(e / "x.bmp", 8, 8, 2)
    mine = picture(e / "x-x4-2.png", 5, 7, 3).read_bytes()
    p = gan("upscale", "srresnet-x4", "e", cwd=tmp_path)
    assert p.returncode == 0 and "upscaled 2 image(s)" in p.stdout, p.stderr
    assert (e / "x-x4-2.png").read_bytes() == mine and (e / "x-x4.png").is_file() and (e / "x-x4-3.png").is_file()
    k = tmp_path / "k"
    picture(k / "a.png", 8, 8, 4)
    b = picture(k / "b.png", 8, 8, 5).read_bytes()
    (k / "a-x4.png").symlink_to("b.png")
    one_error(gan("upscale", "srresnet-x4", "k", cwd=tmp_path), "would replace an input")
    assert (k / "b.png").read_bytes() == b and a.is_file()


def test_a_picture_to_stdout_is_alone_there(tmp_path):
    p = subprocess.run([sys.executable, "-m", "gancli", "sample", "dcgan-mnist", "-n", "4", "-o", "-"],
                       capture_output=True, cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert p.returncode == 0 and p.stdout.endswith(b"IEND\xaeB`\x82") and b"wrote" in p.stderr


def test_an_image_reaches_the_disk_before_it_replaces_a_file_and_a_checkpoint_always(tmp_path, monkeypatch):
    """A new image is renamed into place without waiting for the disk (a crash loses nothing the user had); one that
    replaces a file, and every durable write (checkpoints, weights), is fsynced first."""
    from gancli.data.imageio import atomic_write, save_image

    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real(fd))
    img = Image.new("RGB", (8, 8), (200, 10, 10))
    save_image(img, tmp_path / "new.png")
    assert synced == [] and Image.open(tmp_path / "new.png").getpixel((0, 0)) == (200, 10, 10)
    save_image(Image.new("RGB", (8, 8), (0, 0, 255)), tmp_path / "new.png")
    assert len(synced) == 1 and Image.open(tmp_path / "new.png").getpixel((0, 0)) == (0, 0, 255)
    atomic_write(tmp_path / "step-1.pt", lambda f: f.write(b"weights"))
    assert len(synced) == 2 and (tmp_path / "step-1.pt").read_bytes() == b"weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.png", "step-1.pt"]  # no temporary file left
