"""A family's defaults live in its options: build's defaults (what a config.json without the key means) and the
arch_args a run writes follow them, for every registered family."""
import inspect
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from gancli.families import catalog
from gancli.options import LOOP

FAMILIES = catalog.all_families()
ZOO = Path(__file__).resolve().parents[1] / "zoo"


def option_defaults(family) -> dict:
    """Each option's default as a run resolves it: the family's own default over the declaration's."""
    return {o.name: family.defaults.get(o.name, o.default) for o in family.declared()}


def build_defaults(family) -> dict:
    return {n: p.default for n, p in inspect.signature(family.build).parameters.items() if p.default is not p.empty}


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_build_defaults_are_the_option_defaults(name):
    family = FAMILIES[name]
    options, loop = option_defaults(family), {o.name for o in LOOP}  # --channels, --size: the data decides those
    built = build_defaults(family)
    checked = 0
    for arg, default in built.items():
        option = family.arch_options.get(arg, arg)
        if option not in options or option in loop:
            continue
        checked += 1
        assert family.set_by_options.get(arg) == option, f"{name}.build: {arg} is set by --{option} but not OPTION"
        want = family.legacy_defaults.get(arg, options[option])
        assert default == want, f"{name}.build's {arg} defaults to {default!r}, its option to {want!r}"
    assert checked == len(family.set_by_options)
    assert set(family.legacy_defaults) <= set(family.set_by_options)


def test_every_renamed_argument_names_an_option():
    for name, family in FAMILIES.items():
        for arg, option in family.arch_options.items():
            assert option in option_defaults(family), f"{name}: {arg} -> --{option}, which it does not declare"
            assert arg in build_defaults(family)


@pytest.mark.parametrize("name", sorted(n for n, f in FAMILIES.items() if f.legacy_defaults))
def test_a_legacy_key_is_always_written(name):
    """A key whose absence means something else than its option's default (ssgan_net: older models were conv) is
    written by every run, whatever the option says."""
    family = FAMILIES[name]
    data = SimpleNamespace(crop=28, channels=1, labels=[0, 1], class_names=["0", "1"], stack=1)
    for arg in family.legacy_defaults:
        option = family.set_by_options[arg]
        for value in {option_defaults(family)[option], family.legacy_defaults[arg]}:
            opts = family.resolve_options({"data": "x", option: value})
            assert family.arch_args(opts, data)[arg] == value


def test_ssgan_keeps_both_meanings():
    ssgan = FAMILIES["ssgan"]
    assert option_defaults(ssgan)["ssgan_net"] == "mlp"   # what a new run trains
    assert build_defaults(ssgan)["ssgan_net"] == "conv"   # what a config.json from before --ssgan-net was


@pytest.mark.parametrize("config", sorted(ZOO.glob("*/config.json")), ids=lambda p: p.parent.name)
def test_zoo_configs_name_every_changed_default(config):
    """No zoo model relies on a key whose meaning depends on which default applies."""
    config = json.loads(config.read_text())
    family = FAMILIES.get(config["architecture"])
    if family is None:
        pytest.skip("not a GAN family (a classifier)")
    assert set(family.legacy_defaults) <= set(config["arch_args"])


def test_option_args_keeps_builds_order_and_names():
    vae = FAMILIES["vae"]
    opts = vae.resolve_options({"data": "x", "vae_width": 8})
    assert list(vae.option_args(opts, image_size=28, channels=1).items()) == [
        ("latent_dim", 16), ("image_size", 28), ("channels", 1), ("width", 8), ("hidden", 256)]
    with pytest.raises(TypeError):
        vae.option_args(opts, widht=3)
