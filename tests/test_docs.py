"""The examples a new user copies stay true: every ```python block of README.md and docs/ runs as written, and the
README's quick `gan sample`, `interpolate`, `mix` and `upscale` commands run and write what they say."""
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
# what an example assumes the reader did first (the text around it says so)
BEFORE = {"export.md": [["export", "dcgan-mnist", "-o", "dcgan-mnist.onnx"],
                        ["export", "dcgan-mnist", "-o", "dcgan-mnist.pt"]]}


def blocks(path: Path, lang: str) -> list[str]:
    """The fenced ``lang`` blocks of a Markdown file, de-indented (a block inside a list item is indented)."""
    found = re.findall(rf"^([ \t]*)```{lang}\n(.*?)^\1```", path.read_text(), flags=re.S | re.M)
    return ["\n".join(line[len(indent):] for line in body.splitlines()) for indent, body in found]


PYTHON = [(p, i, code) for p in DOCS for i, code in enumerate(blocks(p, "python"))]


def env() -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT), GAN_DATA=str(SHARED), COLUMNS="100")


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    """One evaluation cache for the examples that measure against MNIST: its real features are computed once."""
    return tmp_path_factory.mktemp("docs-cache")


def invoke(args, cwd: Path):
    """`gan ARGS` in this process, run from ``cwd`` (a subprocess per command would cost the suite a torch import
    each)."""
    from typer.testing import CliRunner

    from gancli.cli import app

    here = Path.cwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(app, [str(a) for a in args])
    finally:
        os.chdir(here)


@pytest.mark.skipif(not (SHARED / "mnist").is_dir(), reason="needs ../shared/data/mnist")
@pytest.mark.parametrize("path,index,code", PYTHON, ids=[f"{p.name}-{i}" for p, i, _ in PYTHON])
def test_python_example_runs(path, index, code, tmp_path, shared_cache):
    if "onnxruntime" in code:
        pytest.importorskip("onnxruntime")
    for args in BEFORE.get(path.name, []):
        assert invoke(args, tmp_path).exit_code == 0
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                       env=env() | {"GAN_CACHE": str(shared_cache)}, timeout=300)
    assert p.returncode == 0, f"{path.name} example {index}:\n{code}\n{p.stderr[-3000:]}"


def readme_commands(section: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    part = text[text.index(f"### `gan {section}`"):]
    body = blocks_of(part)
    return [line.split("  #")[0].strip() for line in body.splitlines() if line.startswith("gan ")]


def blocks_of(text: str) -> str:
    return re.search(r"```bash\n(.*?)```", text, flags=re.S).group(1)


def photo(path: Path, w: int, h: int, seed: int = 0):
    path.parent.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[:h, :w]
    img = np.stack([128 + 90 * np.sin(xx / (4 + c) + seed) * np.cos(yy / 6) for c in range(3)], -1)
    Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(path)


@pytest.mark.parametrize("section", ["sample", "interpolate", "mix", "upscale"])
def test_readme_commands_run(section, tmp_path):
    """Each command line of the README's section, as written (a training run's folder aside: that needs a run)."""
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255
    Image.fromarray(digit).save(tmp_path / "a.png")
    Image.fromarray(digit.T.copy()).save(tmp_path / "b.png")
    photo(tmp_path / "photo.jpg", 40, 32)
    photo(tmp_path / "small.png", 24, 20, 1)
    photo(tmp_path / "photos" / "one.jpg", 20, 20, 2)
    commands = [c for c in readme_commands(section) if "runs/" not in c]
    assert commands
    for command in commands:
        r = invoke(shlex.split(command)[1:], tmp_path)
        assert r.exit_code == 0, f"{command}\n{r.output[-2000:]}"
        for word in shlex.split(command):
            if re.fullmatch(r"[\w-]+\.(png|jpg|gif|webp)", word) and word not in ("a.png", "b.png", "photo.jpg",
                                                                                  "small.png"):
                assert (tmp_path / word).is_file(), f"{command} wrote no {word}"


QUICK = ("sample", "interpolate", "mix", "upscale", "info", "classify", "export")


def quick_doc_commands() -> list[tuple[str, str]]:
    """The `gan` lines of docs/*.md that finish in seconds on the CPU and need nothing the reader makes first: the
    quick subcommands, on zoo models that are published, drawing at most a few hundred images. (The README's own
    sections are run by test_readme_commands_run.)"""
    from gancli.store.hub import planned_entries

    planned, seen, found = planned_entries(), set(), []
    for path in DOCS[1:]:
        for body in blocks(path, "bash"):
            for line in body.replace("\\\n", " ").splitlines():
                command = line.split("  #")[0].strip()
                words = shlex.split(command) if command.startswith("gan ") else []
                if len(words) < 3 or words[1] not in QUICK or command in seen:
                    continue
                n = next((int(w) for a, w in zip(words, words[1:]) if a in ("-n", "--num", "--per-class")), 0)
                if words[2] in planned or "runs/" in command or n > 200:
                    continue
                seen.add(command)
                found.append((path.name, command))
    return found


QUICK_COMMANDS = quick_doc_commands()


@pytest.mark.parametrize("doc,command", QUICK_COMMANDS, ids=[c[4:40] for _, c in QUICK_COMMANDS])
def test_quick_doc_commands_run(doc, command, tmp_path):
    """Each quick command of docs/, as written, from a folder holding the inputs the text around it names."""
    if "onnx" in command:
        pytest.importorskip("onnxruntime")
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255
    for name in ("a.png", "b.png", "digit.png", "more-digits/one.png"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        Image.fromarray(digit if name != "b.png" else digit.T.copy()).save(tmp_path / name)
    photo(tmp_path / "photo.jpg", 40, 32)
    photo(tmp_path / "small.png", 24, 20, 1)
    photo(tmp_path / "photos" / "one.jpg", 20, 20, 2)
    r = invoke(shlex.split(command)[1:], tmp_path)
    assert r.exit_code == 0, f"{doc}: {command}\n{r.output[-2000:]}"
    for word in shlex.split(command):
        if re.fullmatch(r"[\w.-]+\.(png|jpg|gif|webp|onnx|pt|csv|json)", word) and not (tmp_path / word).is_file() \
                and word not in ("a.png", "b.png", "photo.jpg", "small.png", "digit.png"):
            written = sorted(p.name for p in tmp_path.iterdir())
            assert any(p.startswith(Path(word).stem) for p in written), f"{command} wrote no {word}: {written}"
