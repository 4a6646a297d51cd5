"""Where a BEGAN run's G went, beside how well its D reconstructs each class: per Fashion-MNIST class, the mean L1
reconstruction error L(x) of the real test images under the run's latest D (the autoencoder), and the share of the
run's samples the judge names that class. G minimises L(G(z)), so one might expect it in the classes D reconstructs
best; a collapsed run shows it can sit where D reconstructs worst (its gradient is local).

    python bench/began_per_class.py runs/began-w32-g09 [--samples 2000]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from gancli.data import datasets
from gancli.families import catalog
from gancli.quality.judges import load_judge


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("--samples", type=int, default=2000)
    args = ap.parse_args()
    ckpt = sorted((args.run / "checkpoints").glob("step-*.pt"))[-1]
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    if state["arch"] != "began" or state["arch_args"].get("image_size") != 28:
        raise SystemExit(f"error: {args.run} is not a BEGAN run on 28 px Fashion-MNIST")
    nets = catalog.get(state["arch"]).build(**state["arch_args"])
    for name, net in nets.items():
        net.load_state_dict(state["networks"][name])
        net.eval()
    data = datasets.load_idx_split(datasets.find(datasets.lookup("fashion")), "test")
    x, y = data.images.float() / 127.5 - 1, data.labels
    judge = load_judge("classifier-fashion")
    with torch.no_grad():
        loss = torch.cat([nets["discriminator"](x[i:i + 500]) for i in range(0, len(x), 500)])
        z = torch.randn(args.samples, state["arch_args"]["latent_dim"], generator=torch.Generator().manual_seed(0))
        fake = torch.cat([nets["generator"](z[i:i + 500]) for i in range(0, len(z), 500)])
        named = judge.predict(fake)
        fake_loss = nets["discriminator"](fake)
    rows = []
    for c, name in enumerate(data.class_names):
        rows.append({"class": name, "real_L": round(float(loss[y == c].mean()), 4),
                     "share_of_samples": round(float((named == c).float().mean()), 4)})
    rows.sort(key=lambda r: r["real_L"])
    print(json.dumps({"run": str(args.run), "step": state["step"], "fake_L": round(float(fake_loss.mean()), 4),
                      "classes": rows}, indent=1))


if __name__ == "__main__":
    main()
