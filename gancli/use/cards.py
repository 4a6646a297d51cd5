"""Model cards: the README.md beside every model's weights, in the Hugging Face layout (YAML front matter, then
what the model is, how to use it, how it was trained, and what ``gan eval`` measured). The family supplies the
first sentence and the commands that use it."""
from __future__ import annotations

from gancli.families import catalog, losses
from gancli.quality import measures


def model_card(config: dict, last: dict, results: str = "", where: str | None = None) -> str:
    """``where``: the name or folder that loads the model, for the "Use" block (default: its name)."""
    family = catalog.get(config["architecture"])
    t = config["training"]
    conditional = family.is_conditional(config.get("arch_args", {}))
    tags = ["gan", "gancli", config["architecture"], "image-generation"] + (["conditional"] if conditional else [])
    lines = [
        "---", "license: mit", "library_name: gancli", "tags:", *[f"- {x}" for x in tags],
        "datasets:", f"- {config['dataset']}", f"pipeline_tag: {family.pipeline_tag(config)}", "---", "",
        f"# {config['name']}", "", family.card_summary(config), "",
        "## Use", "", "```bash", *family.card_use(config, where or config["name"]), "```", "",
        "## Training", "", "```bash", t["command"], "```", "",
        f"- {t['steps']} steps ({t['epochs']} epochs) at batch {t['batch_size']}"
        + (f" x {t['processes']} processes" if t.get("processes", 1) > 1 else "")
        + (f", loss `{t['loss']}`" if t.get("loss") else "") + f", seed {t['seed']}"
        + (f", EMA {t['ema']}" if t.get("ema") else ""),
        f"- {t['seconds']} s of training on {t['device']} (torch {t['torch']}, {t['platform']})"
        + (f"; resumed, {t['seconds_this_session']} s in the last session"
           if t.get("seconds_this_session", t["seconds"]) != t["seconds"] else ""),
    ]
    if last and "d_real" in last:
        line = "- last logged: " + ", ".join(f"{measures.label(k)} {last.get(k)}"
                                             for k in ("loss_d", "loss_g", "d_real", "d_fake"))
        if "value" in last:  # cards have always spelled it without the space (measures.label: "V(D, G)")
            line += f", V(D,G) {last['value']} (at the equilibrium: -log 4 = {losses.OPTIMAL_VALUE:.3f})"
        # (a family's own words for its loss, stackgan's "ns, matching-aware", are no entry of the table)
        elif getattr(losses.LOSSES.get(t.get("loss")), "reads_as", None) == "score":
            line += f" (D's raw scores: under {t['loss']} only the gap between them means anything)"
        lines.append(line)
    elif last:
        shown = {k: v for k, v in last.items() if k not in ("step", "epoch", "images_per_s") and
                 not k.startswith("lr_")}
        lines.append("- last logged: " + ", ".join(f"{k} {v}" for k, v in shown.items()))
    if results:
        lines += ["", "## Results", "", results.strip()]
    return "\n".join(lines) + "\n"
