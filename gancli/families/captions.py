"""The captions StackGAN learns from and is asked for, with their vocabulary: there is no caption data set offline,
so they are written here from Fashion-MNIST's labels (five training phrasings per class, two unseen ones made only
of vocabulary words), and a model's vocabulary in config.json is checked here as untrusted input. Also the loaded
model that draws from captions (``StackGANModel``: ``--text`` and ``--stage``), and what `gan eval` draws from
captions and judges."""
from __future__ import annotations

import difflib
import re

import torch

from gancli.data.datasets import class_key
from gancli.families.abilities import GENERATE, Ability
from gancli.families.model import GANModel
from gancli.options import Option

# class (Fashion-MNIST's names) -> (training phrasings, unseen phrasings made of vocabulary words)
CAPTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "T-shirt/top": (("a t-shirt", "a short sleeved top", "a plain tee", "a top", "a casual t-shirt"),
                    ("a short sleeved tee", "a plain casual top")),
    "Trouser": (("a pair of trousers", "trousers", "long trousers", "a pair of pants", "pants"),
                ("long pants", "a pair of long trousers")),
    "Pullover": (("a pullover", "a warm sweater", "a knitted jumper", "a sweater", "a long sleeved pullover"),
                 ("a knitted sweater", "a warm long sleeved jumper")),
    "Dress": (("a dress", "a summer dress", "a long dress", "a short dress", "an evening dress"),
              ("a long summer dress", "a short evening dress")),
    "Coat": (("a coat", "a warm coat", "a winter coat", "a long coat", "a jacket"),
             ("a warm winter jacket", "a long jacket")),
    "Sandal": (("a sandal", "a summer sandal", "an open sandal", "a flat sandal", "a strappy shoe"),
               ("an open summer sandal", "a flat strappy sandal")),
    "Shirt": (("a shirt", "a button shirt", "a collared shirt", "a long sleeved shirt", "a blouse"),
              ("a collared button shirt", "a long sleeved blouse")),
    "Sneaker": (("a sneaker", "a running shoe", "a trainer", "a sports shoe", "a canvas sneaker"),
                ("a canvas running shoe", "a sports sneaker")),
    "Bag": (("a bag", "a handbag", "a leather bag", "a shoulder bag", "a tote bag"),
            ("a leather handbag", "a leather shoulder bag")),
    "Ankle boot": (("an ankle boot", "a boot", "a leather boot", "a short boot", "a winter boot"),
                   ("a leather ankle boot", "a short winter boot")),
}
MAX_WORDS = 12          # words in one caption
MAX_VOCABULARY = 1000   # words a model's config.json may list
WORD = re.compile(r"[a-z0-9][a-z0-9'-]{0,31}")


CAPTION_KEYS = {class_key(name): name for name in CAPTIONS}


def words(text: str) -> list[str]:
    """A caption's words: lower case, split on spaces, commas and full stops."""
    return [w for w in re.split(r"[\s,.;:!?]+", text.lower()) if w]


def vocabulary_of(class_names: list[str]) -> list[str]:
    """Every word of the classes' captions, training and unseen, sorted."""
    return sorted({w for c in class_names for group_ in CAPTIONS[CAPTION_KEYS[class_key(c)]] for t in group_
                   for w in words(t)})


def _quoted(text: str, most: int = 60) -> str:
    """A caption as an error line quotes it: a long one is cut, so the line stays one line a person can read."""
    return repr(text if len(text) <= most else text[:most] + "...")


def tokens(vocabulary: list[str], texts: list[str]) -> torch.Tensor:
    """Captions -> word indices (N, MAX_WORDS), 1-based, 0-padded. An unknown word is a LookupError that lists the
    vocabulary (it is small): the encoder has no vector for it."""
    index = {w: i + 1 for i, w in enumerate(vocabulary)}
    out = torch.zeros(len(texts), MAX_WORDS, dtype=torch.long)
    for row, text in enumerate(texts):
        ws = words(text)
        if not ws:
            raise ValueError("--text is empty: give a caption, e.g. --text 'an ankle boot'")
        if len(ws) > MAX_WORDS:
            raise ValueError(f"--text {_quoted(text)} has {len(ws)} words; captions have at most {MAX_WORDS}")
        for col, w in enumerate(ws):
            if w not in index:
                close = difflib.get_close_matches(w, vocabulary, n=2, cutoff=0.75)
                hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
                raise LookupError(f"unknown word {_quoted(w, 30)} in --text {_quoted(text)}{hint}; the vocabulary is: "
                                  f"{', '.join(vocabulary)}")
            out[row, col] = index[w]
    return out


def check_vocabulary(vocabulary, vocab_size: int) -> str | None:
    """Why a config.json ``vocabulary`` cannot be used (None if it can): untrusted, so bounded and plain."""
    if not isinstance(vocabulary, list) or not 1 <= len(vocabulary) <= MAX_VOCABULARY:
        return f"vocabulary must be a list of 1 to {MAX_VOCABULARY} words"
    for w in vocabulary:
        if not isinstance(w, str) or not WORD.fullmatch(w):
            return f"vocabulary holds {str(w)[:40]!r}, not a lower-case word of at most 32 letters, digits, ' or -"
    if len(set(vocabulary)) != len(vocabulary):
        return "vocabulary lists a word twice"
    if len(vocabulary) + 1 != vocab_size:
        return f"vocabulary has {len(vocabulary)} words but arch_args.vocab_size is {vocab_size} (words + padding)"
    return None


def check_classes(names, text_classes) -> str | None:
    """Why config.json's ``class_names`` cannot name the captions' classes (None if they can)."""
    if not isinstance(names, list) or not all(isinstance(c, str) and class_key(c) in CAPTION_KEYS for c in names):
        return f"class_names must list classes stackgan has captions for ({', '.join(CAPTIONS)})"
    if len(names) != text_classes:
        return f"class_names lists {len(names)} classes but arch_args.text_classes is {text_classes}"
    return None


CAPTIONED = Ability("captions", options=(
    Option("text", str, None, "The caption, e.g. 'an ankle boot'; its words must be in the model's vocabulary.",
           operations=(GENERATE,)),
    Option("stage", int, None, "1 for stage I's coarse image (upscaled), 2 (default) for the final one.",
           operations=(GENERATE,)),
))


class StackGANModel(GANModel):
    """A loaded StackGAN draws from captions, not class labels, and has two stages."""

    abilities = (CAPTIONED,)

    def labels_for(self, n: int, label: int | str | None = None, text: str | list[str] | None = None,
                   **use) -> torch.Tensor:
        """The caption ``text`` (a list: one per image, cycled) as word indices; without one, the family's default
        captions (each class's first training phrasing) in turn."""
        self.check_use(**use)
        if label is not None:
            raise ValueError(f"{self.config.get('name', 'this model')} draws from a caption: give --text, not --label")
        texts = [text] if isinstance(text, str) else list(text or self.family.default_texts(self.config))
        if not texts:
            raise ValueError("no caption given: give --text")
        ids = self.family.text_tokens(self.config, texts)
        return ids[torch.arange(n) % len(ids)]

    def require_use(self, text: str | None = None, **rest):
        """A text model samples what it is told: without a caption, one line that says how to give one."""
        if text is None:
            prompts = self.family.default_texts(self.config)
            raise ValueError(f"{self.config.get('name', 'this model')} draws images from a caption: give --text, "
                             f"e.g. --text {prompts[-1]!r}" if prompts else "give --text")
        super().require_use(**rest)

    def generator_options(self, stage: int | None = None, **rest) -> dict:
        """``stage``: 1 for stage I's coarse image (upscaled to the model's size), 2 (the default) the final one."""
        if stage is not None and stage not in (1, 2):
            raise ValueError(f"--stage {stage}: a StackGAN has stage 1 (coarse) and stage 2 (final)")
        return super().generator_options(**rest) | ({} if stage is None else {"stage": stage})

    def describe_use(self, text: str | None = None, stage: int | None = None, **rest) -> list[str]:
        return ([] if text is None else [f"{text!r}" + (f", stage {stage}" if stage else "")]) \
            + super().describe_use(**rest)


# ------------------------------------------------------------------------------------------------ judged
TEXT_SAMPLES = 200  # samples per class (and prompt set) that `gan eval` judges


def drawn_from_captions(model, judge, prompts: list[str], k: int, stage: int):
    """The judge's (features, logits) of TEXT_SAMPLES images drawn from ``prompts`` (cycled), seeds 1000 + k."""
    z = model.latents_for(TEXT_SAMPLES, seed=1000 + k)
    return judge.run(torch.cat(list(model.generate(z, model.labels_for(TEXT_SAMPLES, text=prompts), stage=stage))))


def class_spread_ratio(feats, real, judge, name: str) -> float | None:
    """Diversity of one caption's samples over that of the real images of its class (None: no such images)."""
    from gancli.quality.formulas import diversity

    if real is None or real.labels is None or not real.class_names:
        return None
    keys = [class_key(c) for c in real.class_names]
    if class_key(name) not in keys:
        return None
    images = real.images[real.labels == keys.index(class_key(name))]
    if len(images) < 2:
        return None
    return round(diversity(feats) / max(diversity(judge.run(images)[0]), 1e-12), 4)