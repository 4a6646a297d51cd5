"""How many steps a family needs before its samples show shapes: the number `gan train` compares a planned run with
(``Family.learns_after``), measured on the shared data sets.

    OMP_NUM_THREADS=1 python bench/learns_after.py                 # every sampler family below
    python bench/learns_after.py --only dcgan,vae --steps 3000

Each family trains with its own defaults (the batch size among them) on MNIST (Fashion-MNIST where the family is made
for it), with ``--eval-every``: the judge (classifier-mnist or classifier-fashion) reads 500 fixed samples each time.
"Shows shapes" is the first evaluation at which at least a quarter as many samples as real images are read with 90%
confidence (``legible_share >= real_legible_share / 4``, about 24% on MNIST): digits or garments a person would name
among the blobs, the point where a run starts to be worth looking at (a DCGAN's best reach 48-75% after 20 epochs).
Prints one row a family: that step (or "not by N"), the legible share there and at the end, seconds per step on this
machine, and the legible share at every evaluation.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"

# family -> (data set, options beyond the family's defaults)
RECIPES = {
    "mlp": ("mnist", {}),
    "dcgan": ("mnist", {}),
    "acgan": ("mnist", {}),
    "vae": ("mnist", {}),
    "began": ("fashion-mnist", {}),
    "design": ("fashion-mnist", {}),
    "stylegan": ("fashion-mnist", {"size": 32}),
    "ssgan": ("mnist", {}),
}


def measure(family: str, steps: int, every: int) -> dict:
    from gancli.training.trainer import Trainer, TrainOptions

    data, extra = RECIPES[family]
    with tempfile.TemporaryDirectory() as tmp:
        t = Trainer(TrainOptions(data=str(SHARED / data), out=str(Path(tmp) / "run"), arch=family, steps=steps,
                                 eval_every=every, eval_samples=500, sample_every=10**9, device="cpu", **extra))
        t0 = time.time()
        t.run()
        seconds = time.time() - t0
        rows = [json.loads(l) for l in (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if r.get("event") == "eval" and r.get("legible_share") is not None]
    first = next((r for r in evals if r["legible_share"] >= r["real_legible_share"] / 4), None)
    return {"family": family, "data": data, "batch_size": t.opts.batch_size, "steps": steps,
            "shapes_at": first["step"] if first else None,
            "legible_then": first["legible_share"] if first else None,
            "legible_end": evals[-1]["legible_share"] if evals else None,
            "real_legible": evals[-1]["real_legible_share"] if evals else None,
            "seconds_per_step": round(seconds / steps, 3),
            "series": [(r["step"], r["legible_share"]) for r in evals]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(RECIPES))
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--every", type=int, default=250)
    args = ap.parse_args(argv)
    print("| family | data | batch | shows shapes at step | legible then | legible at the end | real | s/step | "
          "legible by step |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for family in args.only.split(","):
        r = measure(family, args.steps, args.every)
        shapes = f"{r['shapes_at']:,}" if r["shapes_at"] else f"not by {args.steps:,}"
        fmt = lambda v: "-" if v is None else f"{v:.1%}"
        print(f"| {family} | {r['data']} | {r['batch_size']} | {shapes} | {fmt(r['legible_then'])} | "
              f"{fmt(r['legible_end'])} | {fmt(r['real_legible'])} | {r['seconds_per_step']} | "
              + " ".join(f"{s}:{v:.0%}" for s, v in r["series"]) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
