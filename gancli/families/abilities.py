"""What a loaded model can do, declared once: an ``Ability`` names the operations it brings and the use-time
options they take.

Every model that draws from z can ``generate`` (``gan sample``, ``gan interpolate``, ``gan eval``, the demo's
drawing). An ability adds operations, each of them a method of the model class that declares it: ``translate`` and
``upscale`` take images instead of z (they replace ``generate``), ``classify``, ``encode``, ``style_mix``... An
option names the operations it changes (``truncation``: generate, style_mix), never a command, so a new command
that generates takes every family's options without editing a family, and the CLI, the demo and ``gan eval`` ask
one question of the same declarations: the options of an operation (``options_of``; across families,
``gancli.families.catalog.use_options``).

Model classes are declared in their family's module (``class StyleGANModel(GANModel)`` with
``abilities = (STYLE_SPACE,)``); ``gancli.families.model.GANModel`` checks at class creation that each declared
operation is a method of the class, and refuses in words an operation of an ability its class lacks.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from gancli.options import Option

GENERATE = "generate"  # z (and a label or caption) in, images out: what every sampler does

# operation -> the ability that brings it, filled as abilities are declared: what a refusal names
_BRINGS: dict[str, "Ability"] = {}


@dataclass(frozen=True)
class Ability:
    """One thing some models can do. ``operations``: the model methods it brings, each with the words a refusal
    uses for it ("gan translate", "w space"); ``options``: its use-time options; ``replaces_generate``: the
    operation that takes images instead of z (translators, super-resolution), which such a model does instead of
    generating."""

    name: str
    operations: dict[str, str] = field(default_factory=dict)
    options: tuple[Option, ...] = ()
    replaces_generate: str | None = None

    def __post_init__(self):
        for option in self.options:
            if not option.operations:
                raise TypeError(f"{self.name}'s option {option.name} names no operation it changes")
        for operation in self.operations:
            _BRINGS.setdefault(operation, self)

    def __hash__(self):
        return hash(self.name)

    def options_of(self, operation: str) -> list[Option]:
        return [o for o in self.options if operation in o.operations]

    def phrase(self, operation: str) -> str:
        return self.operations.get(operation, operation)


def bringing(operation: str) -> Ability | None:
    """The ability an operation belongs to (``style_mix``: StyleGAN's), or None for a name no ability declares."""
    return _BRINGS.get(operation)
