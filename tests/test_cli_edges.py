"""Edges a user reaches by accident: no network, broken configs, odd option values, pipes and narrow terminals.

Where the exact stderr and exit status matter, these run the real entry point (``python -m gancli``)."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gancli.cli import app
from gancli.store import hub

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def gan(*args, cwd=None, env=None, timeout=120):
    """``gan ARGS`` as a user runs it; the package is the one under test, whatever the cwd."""
    full = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="80") | (env or {})
    return subprocess.run([sys.executable, "-m", "gancli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=full, timeout=timeout)


def one_error_line(p, message: str):
    assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
    assert p.stderr.startswith("error: ") and p.stderr.strip().count("\n") == 0, p.stderr[-2000:]
    assert message in p.stderr and "Traceback" not in p.stderr, p.stderr


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


# ------------------------------------------------------------------------------------------ 12: no tracebacks
def test_push_without_network_is_one_line(tiny_model_dir, tmp_path):
    """huggingface_hub raises its HTTP library's ConnectError (not an OSError) when nothing answers."""
    env = {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_TOKEN": "hf_not_a_real_token", "HF_HOME": str(tmp_path / "hf"),
           "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_TELEMETRY": "1"}
    p = gan("push", tiny_model_dir, "--repo", "alice/tiny-gan", cwd=tmp_path, env=env)
    one_error_line(p, "could not reach the Hugging Face Hub to push alice/tiny-gan")


BROKEN_CONFIGS = [
    (lambda c: {k: v for k, v in c.items() if k != "latent_dim"}, "lacks the required key 'latent_dim'"),
    (lambda c: [c], "holds an array, not a JSON object"),
    (lambda c: c | {"latent_dim": 9}, "latent_dim is 9 but arch_args.latent_dim is 8"),
    (lambda c: "dcgan", "holds a string, not a JSON object"),
]


@pytest.mark.parametrize("edit,message", BROKEN_CONFIGS[:2])
def test_broken_config_is_one_line(edit, message, tiny_model_dir, tmp_path):
    path = tiny_model_dir / "config.json"
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    one_error_line(gan("sample", tiny_model_dir, "-n", 1, "-o", tmp_path / "x.png", "--device", "cpu",
                       cwd=tmp_path), message)
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("edit,message", BROKEN_CONFIGS[2:])
def test_more_broken_configs_are_refused(edit, message, tiny_model_dir, tmp_path):
    path = tiny_model_dir / "config.json"
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    r = invoke("interpolate", tiny_model_dir, "-o", tmp_path / "w.gif", "--device", "cpu")
    assert r.exit_code == 2 and message in r.output, r.output
    assert not (tmp_path / "w.gif").exists()


def test_unknown_option_suggests_only_close_names(tmp_path):
    """click compares "--bogus" with "--verbose" dashes included and calls that a close match."""
    p = gan("sample", "dcgan-mnist", "--bogus", cwd=tmp_path)
    one_error_line(p, "No such option: --bogus")
    assert "Possible options" not in p.stderr
    one_error_line(gan("sample", "dcgan-mnist", "--seeed", "1", cwd=tmp_path), "(Possible options: --seed, --seeds)")


# ------------------------------------------------------------------------------------------ 13: refuse, clearly
@pytest.mark.parametrize("label", ["-1", "1.0", "11", "+3"])
def test_label_that_is_no_class_is_refused_with_the_classes(label, tmp_path):
    r = invoke("sample", "cgan-mnist", "--label", label, "-n", 1, "-o", tmp_path / "x.png", "--device", "cpu")
    assert r.exit_code == 2, r.output
    assert f"unknown class '{label}' for cgan-mnist: the classes are 0, 1, 2, 3, 4, 5, 6, 7, 8, 9" in r.output
    assert not (tmp_path / "x.png").exists()


def test_named_classes_list_names_and_indices(tmp_path):
    r = invoke("sample", "cgan-fashion", "--label", "-7", "-o", tmp_path / "x.png", "--device", "cpu")
    assert r.exit_code == 2 and "0 T-shirt/top, 1 Trouser" in r.output and "9 Ankle boot" in r.output
    r = invoke("sample", "cgan-fashion", "--label", "s", "-o", tmp_path / "x.png", "--device", "cpu")
    assert r.exit_code == 2 and "class 's' is ambiguous" in r.output
    r = invoke("sample", "cgan-fashion", "--label", "t-shirt", "-n", 1, "-o", tmp_path / "x.png", "--device", "cpu")
    assert r.exit_code == 0 and "class T-shirt/top" in r.output


@pytest.mark.parametrize("seeds,message", [("1,,2", "an empty item between commas"), ("1,", "an empty item"),
                                           ("", "empty seed list")])
def test_seed_lists_with_holes_are_refused(seeds, message, tiny_model_dir, tmp_path):
    r = invoke("sample", tiny_model_dir, "--seeds", seeds, "--outdir", tmp_path / "s")
    assert r.exit_code == 2 and message in r.output, r.output
    assert not (tmp_path / "s").exists()


def test_empty_or_folder_output_is_refused_before_sampling(tiny_model_dir, tmp_path):
    p = gan("sample", tiny_model_dir, "-o", "", "--device", "cpu", cwd=tmp_path)
    one_error_line(p, "-o needs a file name, e.g. -o samples.png")
    assert "PosixPath" not in p.stderr
    (tmp_path / "grids").mkdir()
    one_error_line(gan("sample", tiny_model_dir, "-o", "grids", "--device", "cpu", cwd=tmp_path),
                   "-o grids is a folder: give a file name, e.g. -o grids/samples.png")
    assert list((tmp_path / "grids").iterdir()) == []


def test_interpolate_scale_is_checked_and_has_no_fake_default(tiny_model_dir, tmp_path):
    for scale, message in (("-1", "--scale must be 1 or more"), ("0", "--scale must be 1 or more"),
                           ("100000", "GiB of memory (at most 1)")):
        r = invoke("interpolate", tiny_model_dir, "--scale", scale, "-o", tmp_path / "w.gif")
        assert r.exit_code == 2 and message in r.output, r.output
    assert not (tmp_path / "w.gif").exists()
    assert "[default: 0]" not in gan("interpolate", "--help", env={"COLUMNS": "200"}).stdout


@pytest.mark.parametrize("name,message", [
    ("./nonexistent", "no such folder: ./nonexistent"),
    ("runs/mnist", "no such folder: runs/mnist"),  # runs/ is here: a mistyped run, not a Hub repository
])
def test_a_missing_folder_is_named_not_sent_to_the_hub(name, message, tmp_path):
    (tmp_path / "runs").mkdir()
    env = {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path / "hf")}
    p = gan("sample", name, cwd=tmp_path, env=env)
    one_error_line(p, message)
    assert "Hub" not in p.stderr and "Repo id" not in p.stderr


@pytest.mark.parametrize("name,message", [
    ("nonexistent/", "no such folder: nonexistent/"),
    ("a/b/c", "no such folder: a/b/c"),
    ("~/no-such-gan-model", "no such folder: ~/no-such-gan-model"),
    ("./dcgan-mnst", "no such folder: ./dcgan-mnst (zoo names take no path: did you mean dcgan-mnist"),
    ("./dcgan-mnist", "(zoo names take no path: did you mean dcgan-mnist?)"),
])
def test_path_like_names_are_folders(name, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(hub.ModelNotFoundError) as e:
        hub.resolve(name)
    assert message in str(e.value)
    assert not hub.looks_like_path("alice/tiny-gan") and not hub.looks_like_path("dcgan-mnist")


def test_eval_refuses_unwritable_json_and_too_few_samples_up_front(tiny_model_dir, image_folder, tmp_path):
    (tmp_path / "out").mkdir()
    r = invoke("eval", tiny_model_dir, "--real", image_folder, "-n", 20, "--json", tmp_path / "out",
               "--device", "cpu")
    assert r.exit_code == 2 and "--json" in r.output and "is a folder: give a file name" in r.output, r.output
    r = invoke("eval", tiny_model_dir, "--real", image_folder, "-n", 3, "--device", "cpu")
    assert r.exit_code == 2 and "-n must be between 4 and" in r.output, r.output


def test_train_out_that_is_a_file_is_refused_before_training_starts(image_folder, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    p = gan("train", image_folder, "--out", tmp_path / "notes.txt", "--steps", 2, "--batch-size", 8, "--device", "cpu",
            cwd=tmp_path)
    one_error_line(p, "notes.txt is a file; the run directory must be a folder")  # no "training dcgan on ..." first
    assert (tmp_path / "notes.txt").read_text() == "mine"


# ------------------------------------------------------------------------------------------ 14: nothing cut off
def test_info_piped_prints_every_line_whole():
    command = json.loads((hub.zoo_dir() / "dcgan-mnist" / "config.json").read_text())["training"]["command"]
    assert len(command) > 100
    p = gan("info", "dcgan-mnist")
    assert p.returncode == 0, p.stderr
    assert command in [line.strip() for line in p.stdout.splitlines()]  # the card's code block, on one line
    assert "…" not in p.stdout


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_info_in_a_100_column_terminal_wraps_long_lines():
    import fcntl
    import pty
    import struct
    import termios

    command = json.loads((hub.zoo_dir() / "dcgan-mnist" / "config.json").read_text())["training"]["command"]
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 100, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR", "TERM")}
    p = subprocess.Popen([sys.executable, "-m", "gancli", "info", "dcgan-mnist"], stdin=slave, stdout=slave,
                         stderr=slave, env=env | {"PYTHONPATH": str(ROOT), "TERM": "xterm-256color"})
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 1 << 16)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert p.wait(timeout=60) == 0
    os.close(master)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x1b]*\x1b\\", "", b"".join(chunks).decode(errors="replace"))
    card = text[:text.index(" config.json ")]  # the card, before the rule that introduces config.json
    assert max(len(line.rstrip()) for line in card.splitlines()) <= 100
    assert "".join(command.split()) in "".join(card.split())  # wrapped over lines, not cut
    assert "…" not in text


def test_training_progress_in_a_log_is_whole_lines(image_folder, tmp_path):
    r = invoke("train", image_folder, "--arch", "dcgan", "--out", tmp_path / "run", "--steps", 20, "--batch-size", 8,
               "--g-width", 4, "--d-width", 4, "--latent-dim", 8, "--sample-every", 100, "--checkpoint-every", 100,
               "--log-every", 2, "--device", "cpu")
    assert r.exit_code == 0, r.output
    lines = [l for l in r.output.splitlines() if l.startswith("train ")]
    assert lines[-1].startswith("train 20/20 (100%)") and "loss_d" in lines[-1] and "img/s" in lines[-1]
    assert 2 <= len(lines) <= 11 and "…" not in r.output and "━" not in r.output


def test_help_and_messages_read_right(tiny_model_dir, tmp_path):
    helptext = gan("sample", "--help", env={"COLUMNS": "200"}).stdout
    assert "one folder per class in OUTDIR" in helptext and "OUTDIR//" not in helptext
    r = invoke("sample", tiny_model_dir, "-n", 1, "-o", tmp_path / "one.png", "--device", "cpu")
    assert r.exit_code == 0 and "wrote 1 image to" in r.output and "1 images" not in r.output
    r = invoke("sample", tiny_model_dir, "-n", 1, "--outdir", tmp_path / "d", "--device", "cpu")
    assert r.exit_code == 0 and "wrote 1 image to" in r.output
    wide = {"COLUMNS": "250"}
    assert "PSNR/SSIM/sharpness for super-resolution" in " ".join(runner.invoke(app, ["eval", "--help"], env=wide)
                                                                   .output.split())
    assert "log(1 - D(G(z))))." in runner.invoke(app, ["toy", "2d", "--help"], env=wide).output


# ------------------------------------------------------------------------------------------ 15: documented names
def test_documented_but_unpublished_zoo_entry_says_what_to_do(tmp_path):
    p = gan("translate", "cyclegan-horse2zebra", "horse.jpg", cwd=tmp_path)
    one_error_line(p, "cyclegan-horse2zebra is documented but not in the zoo yet")
    assert "gan train ../shared/data/horse2zebra --arch cyclegan" in p.stderr and "gan convert" in p.stderr
    assert "classifier-horse2zebra" not in p.stderr
    # a typo of it leads to it, and so to the instructions
    assert "Did you mean: cyclegan-horse2zebra" in invoke("sample", "cyclegan-horse2zbra").output


def test_every_zoo_name_in_the_docs_is_published_or_planned():
    """A name the README or docs use is either in the zoo or in zoo/planned.json (which says how to make it), and a
    published model leaves planned.json."""
    planned, published = hub.planned_entries(), set(hub.zoo_names())
    assert not set(planned) & published, "published: remove it from zoo/planned.json"
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    verbs = "sample|interpolate|mix|translate|classify|eval|info|push"
    used = {m for d in docs for m in re.findall(rf"\bgan (?:{verbs}) ([a-z][a-z0-9]*-[a-z0-9-]*[a-z0-9])\b",
                                                  d.read_text())}
    typos = {"dcgan-mnst"}  # the README shows what a typo answers
    assert used and used <= published | set(planned) | typos, used - published - set(planned) - typos
