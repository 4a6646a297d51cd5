"""The legible share of samples of issue 13: the images the judge is at least 90% sure of, beside the real images'
share, in `gan eval` and on the model card."""
import torch

from gancli.evaluation.evaluate import Reference, compare, judged
from gancli.quality import formulas
from gancli.quality.judges import Classifier, Judge


def _judge(num_classes=3):
    torch.manual_seed(0)
    net = Classifier(num_classes, widths=(4, 4, 4))
    return Judge(net, {"name": "tiny-judge", "class_names": [str(i) for i in range(num_classes)]}, torch.device("cpu"))


def test_legible_share_counts_images_the_judge_is_at_least_90_percent_sure_of():
    assert formulas.legible_share(torch.tensor([0.95, 0.5, 0.9, 0.89])) == 0.5
    judge = _judge()
    images = torch.rand(6, 3, 28, 28) * 2 - 1
    _, classes, confidence = judged(judge, images[:, :1])
    _, logits = judge.run(images[:, :1])
    assert torch.allclose(confidence, logits.softmax(1).max(1).values) and torch.equal(classes, logits.argmax(1))
    # Stacked-MNIST: legible only if every channel's digit is
    _, _, stacked = judged(judge, images, stack=3)
    per_channel = torch.stack([judge.run(images[:, c:c + 1])[1].softmax(1).max(1).values for c in range(3)])
    assert torch.allclose(stacked, per_channel.min(0).values)


def test_compare_reports_the_legible_share_beside_the_real_images_one():
    g = torch.Generator().manual_seed(0)
    ref = Reference("real", _judge(), torch.randn(40, 8, generator=g), labels=torch.arange(40) % 3, num_classes=3,
                    confidence=torch.tensor([0.99] * 30 + [0.4] * 10))
    result = compare(ref, torch.randn(20, 8, generator=g), torch.arange(20) % 3, kid_subsets=2,
                     confidence=torch.tensor([0.95] * 5 + [0.6] * 15))
    assert (result["legible_share"], result["real_legible_share"]) == (0.25, 0.75)
    assert "legible_share" not in compare(ref, torch.randn(20, 8, generator=g), torch.arange(20) % 3, kid_subsets=2)


def test_the_model_card_shows_the_legible_share_and_the_real_images_one():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("publish_zoo", Path(__file__).parents[1] / "bench" / "publish_zoo.py")
    publish = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(publish)
    r = {"command": "gan eval x", "samples": 10, "seed": 0, "real_images": 10000, "seconds": 1, "device": "cpu",
         "feature_extractor": "classifier-mnist", "feature_extractor_test_accuracy": 0.99, "fid": 1.0,
         "classes_covered": 10, "num_classes": 10, "kl": 0.01, "legible_share": 0.8123, "real_legible_share": 0.9876,
         "parzen_log_likelihood": 225.1, "parzen_standard_error": 2.03, "parzen_sigma": 0.1, "parzen_samples": 10000,
         "parzen_validation_images": 10000, "parzen_test_images": 10000}
    card = publish.results_section(r)
    assert "| legible share (judge's confidence ≥ 0.9; real test images: 98.8%) | 81.2% |" in card
    assert "225.10 ± 2.03" in card
