"""bench/cuda_check.py, the GPU machine's one command, on a machine without CUDA: one line that says so, exit 0,
nothing written; and its measuring code runs (small, on the CPU) so the GPU's few minutes are not spent finding a
typo."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the check would run")
def test_without_cuda_it_says_so_in_one_line(tmp_path):
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "cuda_check.py"), "--out", str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stderr == ""
    assert p.stdout.startswith("cuda_check: CUDA is not available") and p.stdout.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_its_measurements_run_on_the_cpu(tmp_path):
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "cuda_check.py"), "--dry-run-cpu", "--out",
                        str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    report = (tmp_path / "out" / "cuda_check.md").read_text()
    assert "failed" not in report, report
    for row in ("| translate 64 px, batch 1", "| train cyclegan 32 px crops, batch 2", "| train dcgan-mnist, batch 64"):
        assert row in report
