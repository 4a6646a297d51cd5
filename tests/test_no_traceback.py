"""What the machine refuses is one line too: standard output on a full disk, an output folder on a read-only file
system, a demo port already taken. Through the real entry point (``gancli.cli.main``), never a traceback."""
import errno
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_image_folder

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "gancli" / "demo" / "examples"


def gan(monkeypatch, capsys, *args, stdout=None) -> tuple[int, str]:
    """``gan ARGS`` in this process through main(), with standard output replaced: (exit status, stderr)."""
    from gancli.cli import main

    monkeypatch.setattr(sys, "argv", ["gan", *map(str, args)])
    if stdout is not None:
        monkeypatch.setattr(sys, "stdout", stdout)
    with pytest.raises(SystemExit) as exit_:
        main()
    return exit_.value.code, capsys.readouterr().err


@pytest.mark.parametrize("args", [
    ["list"], ["info", "dcgan-mnist"], ["classify", "ssgan-mnist", EXAMPLES / "digit-7.png"],
    ["sample", "dcgan-mnist", "-n", "4", "-o", "{tmp}/grid.png"],
    ["interpolate", "dcgan-mnist", "--steps", "3", "-o", "{tmp}/walk.png"],
    ["mix", "stylegan-fashion", "-o", "{tmp}/mix.png"],
    ["translate", "discogan-bags2shoes", EXAMPLES / "bag.png", "-o", "{tmp}/shoe.png"],
    ["upscale", "srresnet-x4", EXAMPLES / "digit-3.png", "-o", "{tmp}/big.png"],
    ["export", "dcgan-mnist", "-o", "{tmp}/g.pt"],
    ["toy", "1d", "--steps", "20", "--frames", "2", "--json", "{tmp}/toy.json"],
    ["train", str(ROOT / "tests" / "fixtures" / "before_fast_path" / "data" / "trainA"), "--out", "{tmp}/run",
     "--steps", "1", "--batch-size", "2", "--g-width", "4", "--d-width", "4", "--latent-dim", "8", "--device", "cpu"],
], ids=lambda a: a[0])
def test_standard_output_on_a_full_disk_is_one_line(args, tmp_path, monkeypatch, capsys):
    full = open("/dev/full", "w")
    try:
        code, err = gan(monkeypatch, capsys, *[str(a).format(tmp=tmp_path) for a in args], stdout=full)
    finally:
        try:
            full.close()
        except OSError:
            pass
    # what went to standard error before (train's progress) stays; the end is one line, no traceback
    assert code == 2 and err.splitlines()[-1] == "error: writing standard output failed: no space left on the device"
    assert "Traceback" not in err and (args[0] == "train" or err.count("\n") == 1), err


def test_train_into_a_read_only_folder_is_one_line(tmp_path, monkeypatch, capsys):
    data = make_image_folder(tmp_path / "images")
    readonly = tmp_path / "mounted"
    real_mkdir = Path.mkdir

    def mkdir(self, *a, **k):  # a read-only mount, as the kernel answers for it
        if str(self).startswith(str(readonly)):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    code, err = gan(monkeypatch, capsys, "train", data, "--out", readonly / "run", "--steps", 1, "--batch-size", 8,
                    "--device", "cpu")
    assert code == 2 and err == f"error: {readonly / 'run'}: a read-only file system\n", err


def test_a_demo_port_already_taken_is_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        p = subprocess.run([sys.executable, "-m", "gancli", "demo", "--port", str(port)], capture_output=True,
                           text=True, timeout=120, cwd=tmp_path)
    assert p.returncode == 2 and p.stdout == "" and p.stderr.count("\n") == 1, p.stderr
    assert p.stderr.startswith(f"error: --port {port}: 127.0.0.1:{port} is in use (another gan demo?)"), p.stderr
