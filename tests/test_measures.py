"""gancli.quality.measures, the one table of measures: it declares every number `gan eval` writes, for a model of each task,
and the displays that read it show what they showed before."""
import sys
from pathlib import Path

import pytest
from conftest import SHARED
from PIL import Image

from gancli.quality import measures
from gancli.store import hub

needs_mnist = pytest.mark.skipif(not (SHARED / "mnist").is_dir(), reason="needs ../shared/data/mnist")


def _numbers(result: dict) -> set[str]:
    """The keys of `gan eval`'s output that are measures: its numbers (strings, lists and dicts say what was
    measured), also inside a truncation sweep's rows."""
    keys = {k for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return keys.union(*(_numbers(row) for row in result.get("by_truncation", [])))


def _undeclared(result: dict) -> set[str]:
    return _numbers(result) - set(measures.MEASURES)


def _stored_results():
    """(zoo model, task, a stored `gan eval` result) of every zoo model: each is what `gan eval` wrote for it."""
    for name in hub.zoo_names():
        config = hub.read_config(hub.zoo_dir() / name)
        for section in ("evaluation", "evaluation_b2a", "evaluation_truncation"):
            if config.get(section):
                yield name, config.get("task"), config[section]
        for row in (config.get("evaluation_sweep") or {}).get("rows", []):  # --novelty, a family's extras
            yield name, config.get("task"), {k: v for k, v in row.items() if k != "value"}  # value: the option's


def test_the_table_declares_every_number_the_zoo_models_gan_eval_wrote():
    seen_tasks = set()
    for name, task, result in _stored_results():
        seen_tasks.add(task)
        assert not _undeclared(result), (name, _undeclared(result))
    # every task a zoo generator has (classifiers are not measured by gan eval)
    tasks = {hub.read_config(hub.zoo_dir() / n).get("task") for n in hub.zoo_names()} - {"classifier"}
    assert seen_tasks == tasks and {"unconditional", "conditional", "translation", "super-resolution"} <= tasks


@needs_mnist
def test_the_table_declares_what_gan_eval_writes_now_for_a_sampler_with_every_option(tiny_model_dir,
                                                                                     shared_references):
    from gancli.evaluation.evaluate import evaluate

    result = evaluate(str(tiny_model_dir), "mnist", n=100, device="cpu", novelty=True, parzen=True)
    assert {"fid", "parzen_log_likelihood", "class_entropy", "sharpness"} <= _numbers(result)
    assert not _undeclared(result)


def test_the_table_declares_what_gan_eval_writes_now_for_a_cyclegan_translator(translator, tmp_path):
    from gancli.evaluation.evaluate import evaluate

    for split, colour in (("testA", (140, 90, 40)), ("testB", (240, 240, 240))):
        (tmp_path / "pairs" / split).mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (40, 32), tuple(c - 10 * i for c in colour)).save(tmp_path / "pairs" / split / f"{i}.png")
    result = evaluate(str(translator), str(tmp_path / "pairs"), device="cpu")
    assert {"target_domain_rate", "structure", "fid"} <= _numbers(result)
    assert not _undeclared(result)


def test_gan_eval_table_rows_format_numbers_and_say_when_label_accuracy_was_not_measured():
    result = {"model": "m", "samples": 10000, "fid": 12.34567, "ok": True, "label_accuracy": None,
              "feature_extractor_test_accuracy": None, "class_shares": {"a": 0.5}, "kl": 0.01234}
    assert measures.table_rows(result) == [("samples", "10,000"), ("fid", "12.35"), ("label_accuracy", "-"),
                                           ("kl", "0.01234")]


def test_labels_directions_and_formats_read_as_the_displays_always_have():
    assert measures.headline("fid") == "FID (lower is better)" and measures.headline("kid") == "KID (lower is better)"
    assert measures.headline("seed") == "seed" and measures.label("m_global") == "m_global"  # undeclared: as spelled
    assert measures.better("precision") == "higher" and measures.better("sharpness") is None
    assert measures.format_value("label_accuracy", 0.91234) == "91.2%" and measures.format_value("fid", None) == "None"
    assert measures.format_value("undeclared", 0.123456789) == "0.123456789"
    assert all(m.better in ("higher", "lower", None) for m in measures.MEASURES.values())
    from gancli.training import plots
    assert plots.LABELS == {"d_real": "D(x)  (d_real)", "d_fake": "D(G(z))  (d_fake)", "value": "V(D, G)  (value)"}
    assert plots.VALUE_TITLE == "value V(D, G) = E log D(x) + E log(1 - D(G(z)))"


def test_publish_zoo_renders_every_zoo_card_and_the_zoo_doc_from_the_stored_results(tmp_path, monkeypatch):
    """The card results and docs/zoo.md tables (formats from the table) are what the repository holds."""
    root = Path(__file__).resolve().parents[1]
    monkeypatch.syspath_prepend(str(root / "bench"))
    import publish_zoo

    monkeypatch.setattr(publish_zoo, "DOC", tmp_path / "zoo.md")
    (tmp_path / "zoo.md").write_text((root / "docs" / "zoo.md").read_text())
    publish_zoo.update_doc()
    assert (tmp_path / "zoo.md").read_text() == (root / "docs" / "zoo.md").read_text()
    for name in hub.zoo_names():
        config, card = hub.read_config(hub.zoo_dir() / name), (hub.zoo_dir() / name / "README.md").read_text()
        if config.get("evaluation") and config.get("task") == "super-resolution":
            assert publish_zoo.sr_section(name).split("\n\n### What the numbers say")[0] in card, name
        elif config.get("evaluation"):
            assert publish_zoo.results_section(config["evaluation"]).split("\n\nFID and KID")[0] in card, name
    sys.modules.pop("publish_zoo", None)


def test_floors_only_rise_when_a_model_is_published_again():
    floors = {"fid": 3.05, "legible_share": 0.428, "classes_covered": 10}
    better = {"fid": 2.512, "legible_share": 0.5123, "classes_covered": 10, "recall": 0.9012, "coverage": 0.6517,
              "seconds": 99.0}
    raised = measures.raised_floors(floors, better)  # recall is reported, not a floor: outliers raise it
    assert raised == {"fid": 2.52, "legible_share": 0.512, "classes_covered": 10, "coverage": 0.651}
    assert measures.below_floors(better, raised) == []
    worse = {"fid": 3.5, "legible_share": 0.40, "classes_covered": 9}
    assert measures.raised_floors(floors, worse) == floors  # a worse measurement never lowers a floor
