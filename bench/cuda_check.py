"""The CUDA check: one command for the GPU machine, which a session gets for 15 minutes at most, so nothing in it
may be left to try there first (`--dry-run-cpu` runs every measuring path on the CPU, small).

    python bench/cuda_check.py --out DIR [--budget 240]      # on a machine with CUDA
    python bench/cuda_check.py --dry-run-cpu --out DIR         # the same code on the CPU, small sizes, no tests

1. the tests marked cuda (tests/test_on_cuda.py): zoo samplers as on the CPU, every family trains, SIGKILL resume,
   bf16 and channels_last, translate and upscale;
2. side by side, each gan path against a plain eager fp32 PyTorch reference on the same weights and inputs
   (PyTorch's defaults, so TF32 convolutions as any user gets them): translation at 256 px (`gan translate`:
   fp32, --bf16); CycleGAN training at 128 px crops, width 64, 9 blocks, batch 8 and 16, and a DCGAN-MNIST epoch,
   each through `gan train`'s whole loop (bench/train.py's ``loop_rate``: batches, pools, metrics, logging), in its
   default on CUDA (compiled, CUDA graphs, bf16 autocast, channels_last) and --no-compile, against the reference
   implementation's eager update (bench/cyclegan_train.py) and the PyTorch DCGAN example's loop (bench/train.py);
   the compile time on its own lines;
3. the arithmetic limit: each reference's FLOPs per image (torch.utils.flop_counter) at its measured images/s,
   against the GPU's measured matrix-product rate in fp32 (TF32) and bf16.

Everything goes to DIR/cuda_check.md (and stdout). Without CUDA it says so in one line and exits 0.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT)]


def sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rate(fn, images: int, device, repeats: int = 5, warmup: int = 2) -> float:
    """Images/s: the best of ``repeats`` timed calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return images / best


def flops(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def peak_rates(device, small: bool) -> dict:
    """The device's matrix-product rate (TFLOP/s) in fp32 (TF32 as PyTorch's default allows: off for matmul, so
    both are measured) and bf16."""
    import torch

    n = 1024 if small else 8192
    out = {}
    for name, dtype, tf32 in (("fp32", torch.float32, False), ("tf32", torch.float32, True),
                              ("bf16", torch.bfloat16, False)):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        per_s = rate(lambda: a @ b, 1, device, repeats=5 if small else 10, warmup=3)
        out[name] = 2 * n ** 3 * per_s / 1e12
    torch.backends.cuda.matmul.allow_tf32 = False
    return out


# ------------------------------------------------------------------------------------------------ the rows
def translate_rows(device, size: int, batches: list[int], repeats: int):
    """`gan translate`'s path (GANModel.translate: fp32, then --bf16) against the plain eager module."""
    import torch

    from gancli.families.cyclegan import ResnetGenerator
    from gancli.use.model import GANModel

    torch.manual_seed(0)
    width, blocks = (64, 9) if size >= 128 else (8, 2)
    model = GANModel.from_config({"architecture": "cyclegan", "image_size": size, "channels": 3,
                                  "arch_args": {"g_width": width, "n_blocks": blocks}}, device=device)
    eager = ResnetGenerator(3, width, blocks).to(device).eval()
    eager.load_state_dict(model.generator.a2b.state_dict())
    rows, work = [], []
    for b in batches:
        x = torch.rand(b, 3, size, size, generator=torch.Generator().manual_seed(b)) * 2 - 1
        xd = x.to(device)
        with torch.inference_mode():
            ref_out = eager(xd).float().cpu()
            ref = rate(lambda: eager(xd), b, device, repeats)
            for label, bf16 in (("default (fp32)", False), ("--bf16", True)):
                model.bf16 = bf16
                ours_out = model.translate(x, "a2b").float().cpu()
                ours = rate(lambda: model.translate(x, "a2b"), b, device, repeats)
                diff = float((ours_out - ref_out).abs().max())
                rows.append((f"translate {size} px, batch {b} (w{width}, {blocks} blocks)", label, ref, ours,
                             f"max abs diff {diff:.1e}; ours includes the host-device copies, as the command does"))
            model.bf16 = False
            work.append((rows[-1][0], flops(lambda: eager(xd)) / b / 1e9, ref, [rows[-2][3], rows[-1][3]]))
    return rows, work


def synthetic_domains(root: Path, side: int, count: int) -> Path:
    """root/trainA and root/trainB of ``count`` noise photos each, ``side`` px."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for dom in ("trainA", "trainB"):
        (root / dom).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(root / dom / f"{i}.png")
    return root


def side_by_side(reference, ours, images: int, device, repeats: int) -> tuple[float, float, float]:
    """(best reference img/s, best gan img/s, median ratio): rounds alternating, since a machine's load moves."""
    refs, gans = [], []
    for _ in range(repeats):
        refs.append(rate(reference, images, device, 1, 1))
        gans.append(ours())
    return max(refs), max(gans), statistics.median(g / r for g, r in zip(gans, refs))


def cyclegan_rows(device, size: int, width: int, blocks: int, batches: list[int], steps: int, repeats: int,
                  compiles=(True, False), deadline: float = float("inf")):
    """`gan train --arch cyclegan`'s whole loop (its batches cut on the device, the image pools, metrics and logging:
    Trainer.run), compiled (the default on CUDA) and --no-compile, against the reference implementation's eager
    update on batches already on the device (bench/cyclegan_train.py)."""
    import cyclegan_train  # bench/cyclegan_train.py
    import torch
    import train as train_bench  # bench/train.py

    rows, work, notes = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        data = synthetic_domains(Path(tmp) / "data", -(-size * 286 // 256), max(batches) * 4)
        for b in batches:
            if time.time() > deadline:  # each batch size compiles afresh: the rows so far are kept
                notes.append(f"cyclegan batch {b}: skipped, the check's budget was spent")
                continue
            torch.manual_seed(0)
            ref_step = cyclegan_train.reference_step(device, width, blocks)
            real = [torch.rand(b, 3, size, size, device=device) * 2 - 1 for _ in range(2)]

            def reference():
                for _ in range(steps):
                    ref_step(*real)

            what = f"train cyclegan {size} px crops, batch {b} (w{width}, {blocks} blocks; whole loop)"
            torch._dynamo.reset()  # compiled for this batch size alone (a second size would make shapes dynamic)
            for compiled in compiles:
                extra = {}

                def ours():
                    r = train_bench.loop_rate(steps, min(steps, 10), data=str(data), arch="cyclegan", size=size,
                                              g_width=width, d_width=64, n_blocks=blocks, batch_size=b,
                                              device=str(device), compile=compiled)
                    extra["warmup"] = max(extra.get("warmup", 0.0), r["warmup_extra_s"])  # the first, cold one
                    return r["images_per_s"]

                ref, gan, ratio = side_by_side(reference, ours, b * steps, device, repeats)
                label = "default (compiled, CUDA graphs, bf16, channels_last)" if compiled and device.type == "cuda" \
                    else ("--compile" if compiled else "--no-compile")
                rows.append((what, label, ref, gan, f"ratio: median of {repeats} rounds", ratio))
                if compiled:
                    notes.append(f"{what}: compiling and the first 10 steps took {extra['warmup']:.1f} s beyond "
                                 "the steady pace (once per run and batch size)")
            work.append((what, flops(lambda: ref_step(*real)) / b / 1e9, ref, [r[3] for r in rows[-len(compiles):]]))
    return rows, work, notes


def dcgan_rows(device, steps: int, warmup: int, batch: int, repeats: int):
    """A DCGAN-MNIST epoch: the PyTorch example's loop (its DataLoader, eager fp32) against `gan train`'s whole loop,
    compiled and not."""
    import torch
    import train as train_bench  # bench/train.py

    if not train_bench.DATA.is_dir():  # the GPU machine has no ../shared: digits of noise time the same
        train_bench.DATA = stand_in_mnist(Path(tempfile.mkdtemp()) / "mnist")
    images = train_bench.load_data(train_bench.DATA).images
    epoch = len(images) // batch * batch
    what = f"train dcgan-mnist, batch {batch}" + ("" if "shared" in str(train_bench.DATA) else " (noise digits)")
    rows, notes = [], []
    for compiled in (True, False):
        refs, gans, warm = [], [], []
        for _ in range(repeats):
            refs.append(train_bench.reference(images, device, batch, steps, warmup))
            r = train_bench.loop_rate(steps, warmup, data=str(train_bench.DATA), batch_size=batch,
                                      device=str(device), g_width=64, d_width=64, compile=compiled)
            gans.append(r["images_per_s"])
            warm.append(r["warmup_extra_s"])
        ref, gan = max(refs), max(gans)
        label = "default (compiled, CUDA graphs, bf16)" if compiled and device.type == "cuda" else \
            ("--compile" if compiled else "--no-compile")
        rows.append((what, label, ref, gan, f"an epoch ({epoch:,} images): reference {epoch / ref:.1f} s, gan "
                     f"{epoch / gan:.1f} s; reference: the DCGAN example's loop with its DataLoader",
                     statistics.median(g / r for g, r in zip(gans, refs))))
        if compiled:
            notes.append(f"{what}: compiling and the first {warmup} steps took {max(warm):.1f} s beyond the steady "
                         "pace (the first round, cold)")
    step = train_bench.reference_step(device, batch)
    real = torch.rand(batch, 1, 28, 28, device=device) * 2 - 1
    return rows, [(what, flops(lambda: step(real)) / batch / 1e9, ref, [r[3] for r in rows])], notes


def stand_in_mnist(folder: Path, n: int = 60000) -> Path:
    """MNIST's training IDX files, filled with noise: where the real ones are not at hand."""
    import gzip

    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    with gzip.open(folder / "train-images-idx3-ubyte.gz", "wb", compresslevel=1) as f:
        f.write(np.array([0, 0, 8, 3], np.uint8).tobytes() + np.array([n, 28, 28], ">u4").tobytes()
                + rng.integers(0, 256, (n, 28, 28), dtype=np.uint8).tobytes())
    with gzip.open(folder / "train-labels-idx1-ubyte.gz", "wb", compresslevel=1) as f:
        f.write(np.array([0, 0, 8, 1], np.uint8).tobytes() + np.array([n], ">u4").tobytes()
                + rng.integers(0, 10, n, dtype=np.uint8).tobytes())
    return folder


# ------------------------------------------------------------------------------------------------ the run
def command_rows(device, small: bool):
    """bench/commands.py's rows on this device: every inference command, whole process, against its eager script
    (the 12 MP photo only where there is time for it). Its lines go in as notes."""
    if small:  # the dry run checks this file's code; bench/commands.py itself is what measures the CPU
        return [], [], ["- commands: not run in the dry run (python bench/commands.py measures them on the CPU)"]
    only = "sample,translate,upscale-1mp,upscale-1mp-bf16,upscale-12mp,classify"
    p = subprocess.run([sys.executable, str(Path(__file__).with_name("commands.py")), "--only", only,
                        "--repeats", "1", "--device", device.type], capture_output=True, text=True, timeout=400)
    lines = (p.stdout.strip().splitlines() or []) + ([f"commands.py failed: {p.stderr.strip().splitlines()[-1]}"]
                                                     if p.returncode else [])
    return [], [], ["### Every inference command, whole process (bench/commands.py)", "", "```", *lines, "```", ""]


def environment(device) -> list[str]:
    import torch

    lines = [f"- torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}",
             f"- python {sys.version.split()[0]}"]
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        lines.append(f"- {p.name}, {p.total_memory / 2 ** 30:.0f} GiB, {p.multi_processor_count} SMs")
        try:
            smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=20).stdout.strip()
            lines.append(f"- driver {smi}")
        except (OSError, subprocess.SubprocessError):
            pass
    lines.append(f"- TF32: cuDNN convolutions {torch.backends.cudnn.allow_tf32}, matmul "
                 f"{torch.backends.cuda.matmul.allow_tf32} (PyTorch's defaults; the references run with them); "
                 f"cudnn.benchmark {torch.backends.cudnn.benchmark}")
    return lines


def run_tests(out: Path, timeout: int) -> str:
    cmd = [sys.executable, "-m", "pytest", "-m", "cuda", "tests/test_on_cuda.py", "-q", "-rA", "-p", "no:cacheprovider",
           "--durations=15"]
    try:
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        log, status = p.stdout + p.stderr, f"exit {p.returncode}"
    except subprocess.TimeoutExpired as e:
        log = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        status = f"stopped after {timeout} s"
    (out / "cuda_tests.log").write_text(log)
    summary = next((l for l in reversed(log.splitlines()) if " passed" in l or " failed" in l or " error" in l),
                   "(no summary line)")
    failed = [l for l in log.splitlines() if l.startswith(("FAILED", "ERROR"))]
    return "\n".join([f"`{' '.join(cmd[2:])}`: {status}: {summary.strip('= ')}", *[f"- {l}" for l in failed]])


def table(rows, work, rates, device) -> list[str]:
    lines = ["| what | gan path | reference img/s | gan img/s | ratio | notes |", "| --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        what, path, ref, ours, note = row[:5]
        ratio = row[5] if len(row) > 5 else ours / ref
        lines.append(f"| {what} | {path} | {ref:,.1f} | {ours:,.1f} | {ratio:.2f}x | {note} |")
    lines += ["", f"Arithmetic limit: the GPU's measured matrix-product rate {rates['fp32']:.0f} TFLOP/s fp32, "
                  f"{rates['tf32']:.0f} TF32, {rates['bf16']:.0f} bf16.", "",
              "| what | GFLOP/image | reference at | share of TF32 rate | gan at (each path above) | share of bf16 "
              "rate |", "| --- | --- | --- | --- | --- | --- |"]
    for what, gflop, ref, *gan in work:
        used = gflop * ref / 1e3  # TFLOP/s
        ours = [gflop * g / 1e3 for g in (gan[0] if gan else [])]
        lines.append(f"| {what} | {gflop:.3f} | {used:.2f} TFLOP/s | {100 * used / rates['tf32']:.1f}% | "
                     + (", ".join(f"{u:.2f}" for u in ours) + " TFLOP/s" if ours else "-") + " | "
                     + ", ".join(f"{100 * u / rates['bf16']:.1f}%" for u in (ours or [used])) + " |")
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="cuda-check")
    ap.add_argument("--budget", type=int, default=240, help="seconds for the whole check")
    ap.add_argument("--dry-run-cpu", action="store_true", help="the measuring code on the CPU, small, no tests")
    ap.add_argument("--no-tests", action="store_true", help="the speed rows only")
    args = ap.parse_args(argv)
    import torch

    if not args.dry_run_cpu and not torch.cuda.is_available():
        print("cuda_check: CUDA is not available here: nothing checked (on a GPU machine this runs the tests marked "
              "cuda and measures translate, CycleGAN training and a DCGAN-MNIST epoch against eager references)")
        return 0
    t0 = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    small = args.dry_run_cpu
    device = torch.device("cpu" if small else "cuda")
    report = ["# bench/cuda_check.py", "", *environment(device), ""]

    def save():
        (out / "cuda_check.md").write_text("\n".join(report) + "\n")

    if not small and not args.no_tests:
        report += ["## Tests", "", run_tests(out, timeout=min(170, int(args.budget * 0.6))), ""]
        save()
    print("\n".join(report), flush=True)
    rows, work, notes = [], [], []
    phases = [
        ("translate", lambda: translate_rows(device, 64 if small else 256, [1, 2] if small else [1, 8],
                                             2 if small else 5)),
        ("cyclegan", lambda: cyclegan_rows(device, 32 if small else 128, 8 if small else 64, 2 if small else 9,
                                           [2] if small else [8, 16], 4 if small else 40, 1 if small else 2,
                                           # on the CPU compiling even these small CycleGANs takes minutes; the
                                           # compiled path is the same code, and tests/test_compile.py runs it
                                           (False,) if small else (True, False), t0 + args.budget - 60)),
        ("dcgan", lambda: dcgan_rows(device, 10 if small else 300, 5 if small else 20, 64, 1 if small else 2)),
        ("commands", lambda: command_rows(device, small)),
    ]
    for name, phase in phases:
        if time.time() - t0 > args.budget - 20:
            report.append(f"- {name}: skipped, the budget of {args.budget} s was spent")
            continue
        try:
            r, w, *n = phase()
            rows += r
            work += w
            notes += n[0] if n else []
        except Exception as e:  # one failing row must not cost the others
            report.append(f"- {name}: failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        print(f"{name} done at {time.time() - t0:.0f} s", flush=True)
        # the rows so far, written now: a timeout that ends the check later must not take them with it
        (out / "cuda_check.md").write_text("\n".join(report + ["## Speed so far", "", *table(rows, work, {
            "fp32": float("nan"), "tf32": float("nan"), "bf16": float("nan")}, device), "", *notes]) + "\n")
    rates = peak_rates(device, small) if device.type == "cuda" else {"fp32": float("nan"), "tf32": float("nan"),
                                                                     "bf16": float("nan")}
    report += ["## Speed, side by side", "", *table(rows, work, rates, device), "", "Compile time:", "",
               *[f"- {n}" for n in notes], "", f"Whole check: {time.time() - t0:.0f} s."]
    save()
    print("\n".join(report[-(len(rows) + len(work) + 10):]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
