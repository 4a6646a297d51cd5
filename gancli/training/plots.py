"""Training figures with matplotlib: losses.png (what a run logs, one panel per scale, with the theory's lines) and
quality.png (the --eval-every measures).

matplotlib is imported inside the functions, so importing this module (and starting ``gan``) stays light, and
figures are drawn on an Agg canvas of their own: no pyplot, no global backend switched under a user's notebook.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from gancli.quality import measures

# How metrics.jsonl's keys read on a figure: the D outputs and V(D, G) by their symbol (gancli.quality.measures) and
# key; any other key is shown as it is spelled in the file.
LABELS = {k: f"{measures.label(k)}  ({k})" for k in ("d_real", "d_fake", "value")}
VALUE_TITLE = f"value {measures.label('value')} = E log D(x) + E log(1 - D(G(z)))"


@dataclass
class Panel:
    """One axis: its series (label -> [(step, y)]), horizontal guide lines (y, label) and y-axis text."""
    title: str
    series: dict[str, list[tuple[float, float]]]
    ylabel: str = ""
    guides: list[tuple[float, str]] = field(default_factory=list)
    ylim: tuple[float | None, float | None] | None = None  # None: matplotlib's choice


def training_panels(rows: list[dict], shown: tuple[str, ...], guides: dict[str, tuple[float, str]]) -> list[Panel]:
    """losses.png's panels from metrics.jsonl's training rows: the losses together; D(x) and D(G(z)) together; then
    every other shown stat (BEGAN's M_global and k, a classifier's accuracy, V(D, G)) on an axis of its own, since
    their scales differ; the learning rates last. ``guides``: key -> (y, label), where the theory puts a stat at
    the equilibrium p_g = p_data (D* = 1/2, V = -log 4), drawn as a dashed line."""
    present = {k for r in rows for k in r}
    keys = [k for k in dict.fromkeys((*shown, *guides)) if k in present]
    groups: dict[str, list[str]] = {}
    for k in keys:
        group = "losses" if k.startswith("loss") else "D outputs" if k in ("d_real", "d_fake") else k
        groups.setdefault(group, []).append(k)
    panels = []
    for group, members in groups.items():
        lines = sorted({guides[k] for k in members if k in guides})
        title = {"losses": "losses", "D outputs": "discriminator outputs, mean over the batch",
                 "value": VALUE_TITLE}.get(group, group)
        ylabel = {"losses": "loss", "D outputs": "D"}.get(group, LABELS.get(group, group).split("  ")[0])
        panels.append(Panel(title, {LABELS.get(k, k): _series(rows, k) for k in members}, ylabel, lines))
    rates = sorted(k for k in present if k.startswith("lr_"))
    if rates:
        panels.append(Panel("learning rate", {k[3:]: _series(rows, k) for k in rates}, "learning rate"))
    return panels


def quality_panels(evals: list[dict]) -> list[Panel]:
    """quality.png's panels from the --eval-every rows: FID, KID, then the measures that live in [0, 1], where a
    collapse shows as a drop."""
    panels = []
    for key in ("fid", "kid"):
        if any(r.get(key) is not None for r in evals):
            panels.append(Panel(measures.headline(key), {measures.label(key): _series(evals, key)},
                                measures.label(key)))
    unit = {measures.label(k): _series(evals, k) for k in ("precision", "recall")}
    unit["diversity / real"] = [(r["step"], r["diversity"] / max(r["real_diversity"], 1e-9)) for r in evals
                                if r.get("diversity") is not None and r.get("real_diversity") is not None]
    for covered, total in (("classes_covered", "num_classes"), ("modes_covered", "num_modes")):
        if evals and evals[-1].get(covered) is not None:
            unit["coverage"] = [(r["step"], r[covered] / r[total]) for r in evals
                                if r.get(covered) is not None and r.get(total)]
    if any(unit.values()) or not any(_translated(r) for r in evals):
        panels.append(Panel("precision, recall, diversity and coverage", unit, "fraction",
                            [(1.0, "1: the real images' diversity")], ylim=(0, None)))
    translated = {f"{measures.label(key)}, {d}": _series(evals, f"{key}_{d}")
                  for key in ("target_domain_rate", "structure") for d in ("a2b", "b2a")}
    translated = {k: v for k, v in translated.items() if v}
    if translated:  # translators (gan train --arch cyclegan --eval-every)
        panels.append(Panel("whole photos translated: judged the target domain, and the shape kept", translated,
                            "fraction", ylim=(0, 1)))
    return panels


def _translated(row: dict) -> bool:
    return any(k.startswith(("target_domain_rate_", "structure_")) for k in row)


def _series(rows: list[dict], key: str) -> list[tuple[float, float]]:
    return [(r["step"], float(r[key])) for r in rows if isinstance(r.get(key), (int, float))]


def figure(panels: list[Panel], title: str = "", epochs_per_step: float | None = None):
    """The panels stacked over one step axis (epochs along the top when ``epochs_per_step`` is known)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(10, 1.0 + 2.6 * len(panels)), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, panel in zip(axes, panels):
        for k, (label, points) in enumerate(panel.series.items()):
            points = [(x, y) for x, y in points if math.isfinite(y)]
            if points:  # a line style per series: equal series (lr_g = lr_d) stay visible on top of each other
                ax.plot(*zip(*points), label=label, linewidth=1.5, linestyle=("-", "--", "-.", ":")[k % 4],
                        marker="." if len(points) < 30 else None)
        for y, label in panel.guides:
            ax.axhline(y, color="0.3", linestyle="--", linewidth=1, label=label)
        if panel.ylim:
            ax.set_ylim(*panel.ylim)  # one end None: that end follows the data
        ax.set_title(panel.title, loc="left", fontsize=10)
        ax.set_ylabel(panel.ylabel)
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize=8)
    axes[-1].set_xlabel("step")
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))  # no step 2.5
    if epochs_per_step:  # a second scale under the steps: the same positions counted in passes over the data
        epochs = axes[-1].secondary_xaxis(-0.45 / (2.6 - 0.8), functions=(lambda s: s * epochs_per_step,
                                                                         lambda e: e / epochs_per_step))
        epochs.set_xlabel("epoch")
    if title:
        fig.suptitle(title)
    return fig


def save_figure(panels: list[Panel], path: str | Path, title: str = "", epochs_per_step: float | None = None):
    from gancli.data.imageio import atomic_write, make_parent

    fig = figure(panels, title, epochs_per_step)
    path = Path(path)
    make_parent(path)
    atomic_write(path, lambda f: fig.savefig(f, format="png"))


def line_plot(series: dict[str, list[tuple[float, float]]], path: str | Path, title: str = "", ylabel: str = ""):
    """One panel of series over training steps."""
    save_figure([Panel("", series, ylabel)], path, title)
