import inspect
import subprocess
import sys

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

import gancli
from gancli.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_version():
    r = run("--version")
    assert r.exit_code == 0 and gancli.__version__ in r.output


def registered_commands(group=None, path=()):
    """Every command the app registers, as the words that call it (a group's subcommands too): ``gan toy 2d``."""
    group = group or typer.main.get_command(app)
    for name, command in group.commands.items():
        yield (*path, name), command
        if hasattr(command, "commands"):  # a group: `gan toy`
            yield from registered_commands(command, (*path, name))


def runs_as(command):
    """The click command that parses the options: a command built when it runs (``built_when_run``, whose options
    come from the families) is built here, as running it would."""
    if command.callback is None:  # a group without one of its own
        return command
    build = inspect.getclosurevars(inspect.unwrap(command.callback)).nonlocals.get("build")
    return build() if build else command


COMMANDS = dict(registered_commands())


@pytest.mark.parametrize("words", list(COMMANDS), ids=" ".join)
def test_every_command_has_help_with_an_example(words):
    r = run(*words, "--help")
    assert r.exit_code == 0, r.output
    assert "Example" in r.output and "gan " in r.output
    usage = next(line for line in r.output.splitlines() if "Usage:" in line)
    assert f" {' '.join(words)} " in usage, usage
    options = [o for o in runs_as(COMMANDS[words]).params if o.param_type_name == "option" and not o.hidden]
    missing = [o.opts[-1] for o in options if o.opts[-1] not in r.output]  # its long name: "--output"
    assert not missing, (missing, r.output)


def test_the_commands_built_when_run_are_checked_with_their_options():
    """A command built when it runs (`gan sample`, `gan train`: options from the families) has no options until then,
    nor a --help of its own: ``runs_as`` must find what it builds, or the check above would see no options."""
    lazy = [c for c in COMMANDS.values() if not c.add_help_option]
    assert lazy and all(runs_as(c) is not c and runs_as(c).params for c in lazy)


def test_sample_grid(tiny_model_dir, tmp_path):
    out = tmp_path / "grid.png"
    r = run("sample", tiny_model_dir, "-n", 16, "--nrow", 4, "-o", out, "--device", "cpu")
    assert r.exit_code == 0, r.output
    true = tmp_path / "true.png"
    assert run("sample", tiny_model_dir, "-n", 16, "--nrow", 4, "-o", true, "--scale", 1).exit_code == 0
    with Image.open(out) as big, Image.open(true) as im:
        assert im.size == (4 * 30 + 2, 4 * 30 + 2) and im.mode == "L"
        # enlarged for a screen by default (122 px is small), each pixel a 4x4 block of the same grey
        assert big.size == (4 * im.width, 4 * im.height)
        assert np.array_equal(np.asarray(big), np.asarray(im).repeat(4, 0).repeat(4, 1))
    r = run("sample", tiny_model_dir, "-n", 4, "-o", out, "--scale", 0)
    assert r.exit_code == 2 and "--scale must be a whole number from 1 to 64, not 0" in r.output


def test_sample_grid_is_deterministic_per_seed(tiny_model_dir, tmp_path):
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        assert run("sample", tiny_model_dir, "-n", 4, "--seed", seed, "-o", tmp_path / f"{name}.png").exit_code == 0
    read = lambda n: (tmp_path / f"{n}.png").read_bytes()
    assert read("a") == read("b") and read("a") != read("c")


def test_sample_outdir_one_file_per_image(tiny_model_dir, tmp_path):
    r = run("sample", tiny_model_dir, "-n", 7, "--batch-size", 3, "--outdir", tmp_path / "imgs", "--format", "jpg")
    assert r.exit_code == 0, r.output
    files = sorted((tmp_path / "imgs").glob("*.jpg"))
    assert len(files) == 7 and Image.open(files[0]).size == (28, 28)


def test_sample_seeds_list(tiny_model_dir, tmp_path):
    r = run("sample", tiny_model_dir, "--seeds", "0-2,9", "--outdir", tmp_path / "s")
    assert r.exit_code == 0
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [
        "seed0000.png", "seed0001.png", "seed0002.png", "seed0009.png"]
    # --seeds 9 is the same image as --seed 9 -n 1
    run("sample", tiny_model_dir, "--seed", 9, "-n", 1, "--outdir", tmp_path / "t")
    assert (tmp_path / "s" / "seed0009.png").read_bytes() == next((tmp_path / "t").iterdir()).read_bytes()


def test_interpolate_gif_loops(tiny_model_dir, tmp_path):
    out = tmp_path / "walk.gif"
    r = run("interpolate", tiny_model_dir, "--seeds", "1,2,3", "--steps", 4, "-o", out, "--fps", 10)
    assert r.exit_code == 0, r.output
    with Image.open(out) as im:
        assert im.n_frames == 12 and im.info.get("loop") == 0 and im.size == (280, 280)
        assert im.info["duration"] == 100


def test_interpolate_webp_and_png_grid(tiny_model_dir, tmp_path):
    assert run("interpolate", tiny_model_dir, "--seeds", "1,2", "--steps", 3, "-o", tmp_path / "w.webp",
               "--method", "lerp").exit_code == 0
    with Image.open(tmp_path / "w.webp") as im:
        assert im.n_frames == 6
    assert run("interpolate", tiny_model_dir, "--seeds", "1,2", "--steps", 3, "-o", tmp_path / "w.png", "--scale",
               1).exit_code == 0
    with Image.open(tmp_path / "w.png") as im:
        assert im.size == (3 * 30 + 2, 2 * 30 + 2)


@pytest.mark.parametrize("args,message", [
    (["sample", "dcgan-mnst"], "dcgan-mnist"),
    (["sample", "{tiny}", "--seeds", "x-1"], "bad seed list"),
    (["sample", "{tiny}", "-n", "0"], "-n must be"),
    (["sample", "{tiny}", "-o", "grid.tiff"], "grid.tiff: .tiff is not a format this command writes"),
    (["sample", "{tiny}", "--device", "tpu"], "unknown device"),
    (["sample", "{tiny}", "-o", "a.png", "--format", "jpg"], "does not match"),
    (["sample", "/no/such/dir/model"], "no such folder: /no/such/dir/model"),
    (["interpolate", "{tiny}", "--seeds", "1"], "at least two"),
    (["sample", "{tiny}", "-o", "{tmp}/a-file/x.png"], "a-file is a file, not a folder"),
    (["interpolate", "{tiny}", "--method", "cubic"], "slerp or lerp"),
    (["interpolate", "{tiny}", "-o", "walk.mp4"], ".gif, .webp or .png"),
    (["info", "nope"], "unknown model"),
    (["train", "/no/such/data", "--out", "{tmp}/r"], "does not exist"),
    (["train", "{tmp}", "--arch", "dcgam", "--out", "{tmp}/r"], "dcgan"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("not a folder")
    args = [a.format(tiny=tiny_model_dir, tmp=tmp_path) for a in args]
    r = run(*args)
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output
    assert not isinstance(r.exception, Exception) or isinstance(r.exception, SystemExit)


def test_cuda_on_a_cpu_machine_is_a_clear_error(tiny_model_dir):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    r = run("sample", tiny_model_dir, "--device", "cuda")
    assert r.exit_code == 2 and "CUDA is not available" in r.output


def test_verbose_names_the_device(tiny_model_dir, tmp_path):
    r = run("sample", tiny_model_dir, "-n", 1, "-o", tmp_path / "x.png", "-v", "--device", "cpu")
    assert r.exit_code == 0 and "device cpu" in r.output


def test_info_shows_card_and_config(tiny_model_dir):
    r = run("info", tiny_model_dir)
    assert r.exit_code == 0 and "tiny" in r.output and '"architecture": "dcgan"' in r.output


def test_list_shows_zoo():
    r = run("list")
    assert r.exit_code == 0 and "dcgan-mnist" in r.output and "bundled" in r.output


def test_real_process_exit_code_and_no_traceback(tmp_path):
    """Through the real entry point (python -m gancli), not the test runner."""
    p = subprocess.run([sys.executable, "-m", "gancli", "sample", "no-such-model"], capture_output=True, text=True,
                       cwd=tmp_path)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr and p.stderr.strip().count("\n") == 0 and "unknown model" in p.stderr


def test_version_and_help_do_not_load_torch():
    """Every user pays the CLI's start-up: torch loads only for commands that run a model."""
    code = "import sys, gancli.cli; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize("args,message", [(["mix", "dcgan-mnist", "--levels"], "requires an argument"),
                                          (["classify", "dcgan-mnist"], "Missing argument"),
                                          (["train", "data", "--outt", "x"], "No such option: --outt"),
                                          (["nosuch"], "No such command")])
def test_usage_errors_are_one_line_from_the_real_entry_point(args, message, tmp_path):
    p = subprocess.run([sys.executable, "-m", "gancli", *args], capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 2 and p.stderr.startswith("error:") and p.stderr.strip().count("\n") == 0, p.stderr
    assert message in p.stderr and "Traceback" not in p.stderr


def test_bare_gan_shows_help():
    p = subprocess.run([sys.executable, "-m", "gancli"], capture_output=True, text=True)
    assert p.returncode == 2 and "Usage" in p.stdout + p.stderr and "Traceback" not in p.stderr
