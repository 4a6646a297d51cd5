"""Copy a finished run's export/ into zoo/NAME, add a preview grid and the measured results to its model card.

    python bench/publish_zoo.py runs/dcgan-mnist dcgan-mnist --quality q.json [--data ../shared/data/mnist]

The results section quotes the JSON written by bench/mnist_quality.py and the command that produced it.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import gancli
from gancli.imageio import grid_image, save_image

ZOO = Path(__file__).resolve().parents[1] / "zoo"


def results_text(q: dict, name: str, data: str) -> str:
    hist = ", ".join(f"{c}: {v:.1%}" for c, v in zip(q.get("class_names") or range(10), q["histogram"]))
    lines = [
        f"Measured with `python bench/mnist_quality.py {name} -n {q['samples']}"
        + (f" --data {data}" if "fashion" in data else "") + "` "
        f"(judge: {q['judge']}, {q['judge_test_accuracy']:.1%} accurate on real test images):", "",
        "| measure | value |", "| --- | --- |",
        f"| classes covered by {q['samples']:,} samples | {q['classes_covered']} / {q['num_classes']} |",
        f"| KL(sample classes ‖ real classes) | {q['kl']} |",
        f"| smallest / largest class share | {q['smallest_class_share']:.1%} / {q['largest_class_share']:.1%} |",
        f"| mean distance to the nearest training image: samples / real test images | "
        f"{q['nn_distance_samples']} / {q['nn_distance_real_test']} |",
    ]
    if "label_accuracy" in q:
        lines.append(f"| `--label k` samples judged as class k | {q['label_accuracy']:.1%} |")
    lines += ["", f"Class shares of the samples: {hist}.", "", "![samples](samples.png)"]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("name")
    ap.add_argument("--quality", type=Path, required=True)
    ap.add_argument("--data", default="../shared/data/mnist")
    args = ap.parse_args()
    target = ZOO / args.name
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(args.run / "export", target)
    model = gancli.load(target, device="cpu")
    nrow = model.config["arch_args"]["num_classes"] if model.is_conditional else 8
    save_image(grid_image(model.sample(64 if not model.is_conditional else nrow * 8, seed=0), nrow), target / "samples.png")
    q = json.loads(args.quality.read_text())
    if model.class_names:
        q["class_names"] = model.class_names
    card = (target / "README.md").read_text().rstrip() + "\n\n## Results\n\n" + results_text(q, args.name, args.data) + "\n"
    (target / "README.md").write_text(card)
    print(f"published {args.run} as {target}")


if __name__ == "__main__":
    main()
