"""The page: a model list, the controls of the picked model's kind and family, its card beside them. What each
control shows for a model comes from ``view`` (one place for the first render and for every pick). Every handler's
failure reaches the browser as one line (bad input) or one line saying it is a bug (the traceback goes to the
server's log), never as a traceback."""
from __future__ import annotations

import inspect
import re
import sys
import traceback
import uuid

import gradio as gr

from gancli.demo import draw, work
from gancli.families import catalog
from gancli.families.abilities import GENERATE

CSS = ("#card { max-height: 85vh; overflow-y: auto; } #card img { max-width: 100%; image-rendering: pixelated; } "
       # a card's tables: words and numbers whole ("value", "0.7923"), a table too wide for the column scrolls
       "#card td, #card th { word-break: normal !important; overflow-wrap: normal !important; hyphens: none; } "
       "#card td:last-child, #card th:last-child { white-space: nowrap; } #card table { display: block; "
       "overflow-x: auto; } "
       "#picture img, #before img, #after img { image-rendering: pixelated; object-fit: contain; height: 300px; "
       "width: 100%; }")  # 28 px models' pictures enlarged without blur (the served file keeps its pixels)
LEVELS = ["coarse", "middle", "fine"]  # StyleGAN's style levels (gan mix --levels)
ANY = "any (one column per class)"
BAD_INPUT = (ValueError, LookupError, OSError)  # with WeightsError and HubError, which are among them


def view(entry: work.Entry, options: list) -> dict[str, dict]:
    """What each control is for ``entry``: visibility, choices, values (keyed like the components in ``build``)."""
    kind = entry.kind
    shown = {
        "card": {"value": entry.card()},
        "sampler": {"visible": kind == "sample"},
        "label": {"visible": bool(entry.classes), "choices": [ANY, *entry.classes], "value": ANY},
        "mixer": {"visible": entry.can("style_mix")},
        "imager": {"visible": kind in ("translate", "upscale")},
        "direction": {"visible": kind == "translate", "value": "a2b",
                      "choices": [(f"{entry.domains[0]} -> {entry.domains[1]}", "a2b"),
                                  (f"{entry.domains[1]} -> {entry.domains[0]}", "b2a")]},
        "convert": {"value": "Translate" if kind == "translate" else "Upscale x" + str(entry.config.get("scale", ""))},
        "classifier": {"visible": entry.can("classify")},
    }
    for o in options:
        shown[o.name] = {"visible": entry.takes(o.name)}
    return shown


def shielded(fn, names: list[str]):
    """``fn(*values, progress)`` as a Gradio handler of inputs ``names`` (its API's parameters) with a progress bar,
    whose errors are one line on the page."""

    def run(*args):
        try:
            return fn(*args)
        except gr.Error:
            raise
        except BAD_INPUT as e:
            raise gr.Error(one_line(e), duration=None, print_exception=False) from None
        except Exception as e:  # noqa: BLE001 - a bug: its traceback is for the server's log, not the browser
            traceback.print_exc(file=sys.stderr)
            raise gr.Error(f"internal error ({type(e).__name__}); the server's log has the details", duration=None,
                           print_exception=False) from None

    params = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names]
    run.__signature__ = inspect.Signature([*params, inspect.Parameter(
        "progress", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=gr.Progress())])
    run.__name__ = fn.__name__
    return run


def choice_checked_quietly(component):
    """A Dropdown or Radio whose refusal of a value outside its choices (an API call may send any) is one error
    message for the caller, not a traceback in the server's log. Gradio checks choices before any handler runs, with
    an error that asks to be printed; this asks it not to be."""
    check = component.preprocess

    def preprocess(payload):
        try:
            return check(payload)
        except gr.Error as e:
            raise gr.Error(f"{component.label}: {e.message}", duration=None, print_exception=False) from None

    component.preprocess = preprocess
    return component


def one_line(e: Exception) -> str:
    """The error's first line, its options spelled as the page's controls ("--text" -> "text")."""
    if isinstance(e, OSError) and e.strerror:
        text = f"{e.strerror}: {e.filename}" if e.filename else e.strerror
    else:
        text = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return re.sub(r"(?<![\w-])--(?=[a-z])", "", text)


def build(models: work.Models) -> gr.Blocks:
    """The page for ``models``: the model list and the panels of each kind of model on the left, the card on the
    right, every control wired to its action."""
    options = [o for o, _ in catalog.use_options(GENERATE).values()]
    first = view(models.entry(models.first), options) if models.first else {}
    shown: dict = {}  # the components ``view`` speaks of

    def made(key: str, component, **kwargs):
        shown[key] = component(**kwargs, **first.get(key, {}))
        return shown[key]

    with gr.Blocks(title="gan demo", analytics_enabled=False) as app:
        gr.Markdown("## gan demo: the zoo of `gan`, in your browser\nPick a model: samplers draw a grid from a seed, "
                    "translators and upscalers take a photo, classifiers name digits. Its card is on the right.")
        with gr.Row():
            with gr.Column(scale=3):
                ui = {"model": choice_checked_quietly(gr.Dropdown(list(models.entries), value=models.first,
                                                                  label="model", elem_id="model"))}
                ui |= sampler_panel(made, options)
                ui |= image_panel(made)
                ui |= classifier_panel(made)
            with gr.Column(scale=2):
                made("card", gr.Markdown, label="card", elem_id="card")
        wire(Actions(models, options, list(shown)), ui, shown)
    return app


def sampler_panel(made, options: list) -> dict:
    """Seed, number, label and the use-time options; the buttons that draw a grid, an animation or a style mix; the
    picture they show."""
    with made("sampler", gr.Column):
        with gr.Row():
            seed = gr.Number(0, precision=0, label="seed", elem_id="seed")  # checked_seed says what is wrong
            number = gr.Slider(1, work.MAX_GRID, 16, step=1, label="number", elem_id="number")
            label = made("label", gr.Dropdown, label="label", elem_id="label",
                         allow_custom_value=True)  # checked by the model: a name, a prefix or an index
        extra = [made(o.name, gr.Textbox, label=o.name, info=o.help, elem_id=f"use-{o.name}",
                      placeholder="" if o.type is str else "(default)") for o in options]
        with gr.Row():
            generate = gr.Button("Generate", variant="primary", elem_id="generate")
            animate = gr.Button("Interpolation GIF", elem_id="animate")
        with made("mixer", gr.Row):
            levels = choice_checked_quietly(gr.Radio(LEVELS, value="coarse", label="styles from the rows",
                                                     elem_id="levels"))
            mixing = gr.Button("Style mixing", elem_id="mix")
        picture = gr.Image(label="samples", format="png", type="pil", interactive=False,
                           elem_id="picture", buttons=["download"])
    return {"seed": seed, "number": number, "label": label, "extra": extra, "generate": generate,
            "animate": animate, "levels": levels, "mixing": mixing, "picture": picture}


def image_panel(made) -> dict:
    """A photo (or an example) in, the direction of a translator, its button, and the picture before and after."""
    with made("imager", gr.Column):
        photo = gr.File(label="photo (or an example below)", elem_id="photo")
        direction = choice_checked_quietly(made("direction", gr.Dropdown, label="direction", elem_id="direction"))
        convert = made("convert", gr.Button, variant="primary", elem_id="convert")
        with gr.Row():
            before = gr.Image(label="input", format="png", interactive=False, elem_id="before")
            after = gr.Image(label="output", format="png", interactive=False, elem_id="after", buttons=["download"])
        gr.Examples([[str(p)] for p in sorted(work.EXAMPLES.glob("*.*")) if p.stem[:5] != "digit"],
                    [photo], label="examples")
    return {"photo": photo, "direction": direction, "convert": convert, "before": before, "after": after}


def classifier_panel(made) -> dict:
    """Images of digits in (or examples), the button, the first image's classes and a table of every image's."""
    with made("classifier", gr.Column):
        digits = gr.File(label="digits to classify", file_count="multiple", elem_id="digits")
        classify = gr.Button("Classify", elem_id="classify")
        probabilities = gr.Label(num_top_classes=5, label="class of the first image", elem_id="label-out")
        table = gr.Markdown(label="classes", elem_id="classes")
        gr.Examples([[[str(p)]] for p in sorted(work.EXAMPLES.glob("digit-*.png"))], [digits],
                    label="examples")
    return {"digits": digits, "classify": classify, "probabilities": probabilities, "table": table}


def wire(actions: Actions, ui: dict, shown: dict):
    """The events, each under its API name: picking a model updates every control ``view`` speaks of; each button
    calls its action with the controls' values."""
    model, seed, extra, picture = ui["model"], ui["seed"], ui["extra"], ui["picture"]
    model.change(shielded(actions.pick, ["model"]), [model], [shown[k] for k in actions.keys], api_name="pick",
                 show_progress="hidden")
    use_names = [o.name for o in actions.options]
    controls = [model, seed, ui["number"], ui["label"], *extra]
    ui["generate"].click(shielded(actions.sample, ["model", "seed", "number", "label", *use_names]), controls,
                         [picture], api_name="sample")
    ui["animate"].click(shielded(actions.walk, ["model", "seed", "number", "label", *use_names]), controls,
                        [picture], api_name="interpolate")
    ui["mixing"].click(shielded(actions.mix, ["model", "seed", "levels", *use_names]),
                       [model, seed, ui["levels"], *extra], [picture], api_name="mix")
    ui["convert"].click(shielded(actions.transform, ["model", "photo", "direction"]),
                        [model, ui["photo"], ui["direction"]], [ui["before"], ui["after"]], api_name="convert")
    ui["classify"].click(shielded(actions.name_classes, ["model", "digits"]), [model, ui["digits"]],
                         [ui["probabilities"], ui["table"]], api_name="classify")


class Actions:
    """What the page does for ``models``: each action takes its controls' values (and Gradio's progress) and
    returns what its outputs show; ``keys``: the components ``view`` speaks of, in the order ``pick`` updates
    them."""

    def __init__(self, models: work.Models, options: list, keys: list[str]):
        self.models, self.options, self.keys = models, options, keys

    def pick(self, name, progress=None):
        self.models.warm(name)  # loads in the background while the user sets the controls
        shown = view(self.models.entry(name), self.options)
        return [gr.update(**shown.get(k, {})) for k in self.keys]

    def use(self, name, values):
        """The use-time options given (text boxes: empty is not given), typed as their families declare. A box
        the model does not take is hidden, and what it still holds from another model is not sent."""
        entry, given = self.models.entry(name), {}
        for o, v in zip(self.options, values):
            if entry.takes(o.name) and str(v if v is not None else "").strip():
                try:
                    given[o.name] = o.type(str(v).strip())
                except ValueError:
                    raise ValueError(f"{o.name} takes {'a whole number' if o.type is int else 'a number'}, "
                                     f"not {v!r}") from None
        return given

    def loaded(self, name, progress):
        if name not in self.models.loaded:
            progress(0, desc=f"loading {name}")
        return self.models.get(name)

    def sample(self, name, seed, n, label, *rest):
        *values, progress = rest
        m = self.loaded(name, progress)
        return draw.grid(m, work.checked_count(n), work.checked_seed(seed), None if label in (None, ANY) else label,
                         lambda d, t: progress((d, t), desc="sampling"), **self.use(name, values))

    def walk(self, name, seed, n, label, *rest):
        *values, progress = rest
        m = self.loaded(name, progress)
        progress(0.5, desc="walking")
        return str(draw.walk(m, work.checked_count(n), work.checked_seed(seed),
                             self.models.scratch / f"walk-{uuid.uuid4().hex}.gif",
                             None if label in (None, ANY) else label, **self.use(name, values)))

    def mix(self, name, seed, level, *rest):
        *values, progress = rest
        m = self.loaded(name, progress)
        return draw.mix(m, work.checked_seed(seed), level or "coarse", self.use(name, values).get("truncation"))

    def transform(self, name, path, way, progress):
        if not path:
            raise ValueError("upload a photo first (or pick an example)")
        entry = self.models.entry(name)
        limit = work.UPSCALE_PIXELS if entry.kind == "upscale" else work.TRANSLATE_PIXELS
        image = work.read_upload(path, limit)
        m = self.loaded(name, progress)
        if entry.kind == "upscale":
            return image, draw.upscale(m, image, lambda d, t: progress((d, t), desc="tiles"))
        return image, draw.translate(m, image, way or "a2b")

    def name_classes(self, name, paths, progress):
        paths = [paths] if isinstance(paths, str) else list(paths or [])
        if not paths:
            raise ValueError("upload one or more images of digits first")
        if len(paths) > work.MAX_CLASSIFY_FILES:
            raise ValueError(f"{len(paths)} files: the page classifies at most {work.MAX_CLASSIFY_FILES} at once")
        images = [work.read_upload(p, work.TRANSLATE_PIXELS) for p in paths]
        found = draw.classify(self.loaded(name, progress), images)
        rows = ["| file | class | probability |", "| --- | --- | --- |"]
        for p, probs in zip(paths, found):
            best = max(probs, key=probs.get)
            rows.append(f"| {work.Path(p).name} | {best} | {probs[best]:.3f} |")
        return found[0], "\n".join(rows)
