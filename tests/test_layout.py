"""How the code is organised (docs/code.md), held as tests: imports run one way, the loop names no family, an
option is declared once, and every family keeps the contract the loop and GANModel rely on."""
import ast
import inspect
from pathlib import Path

import pytest

from gancli.families import catalog
from gancli.options import LOOP

PACKAGE = Path(__file__).resolve().parents[1] / "gancli"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """gancli module -> the gancli modules it imports: at the top, inside functions, or under TYPE_CHECKING (a
    checker's cycle is a cycle too). Importing ``gancli.a.b`` runs package ``gancli.a`` first, so it counts."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        deps = set()
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("gancli")}
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gancli"):
                for a in node.names:  # `from gancli import hub` imports the module gancli.store.hub
                    deps.add(f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module)
        for dep in list(deps):  # the packages above each imported module run first
            parts = dep.split(".")
            deps |= {".".join(parts[:i]) for i in range(2, len(parts))}
        graph[name] = {d for d in deps if d in modules and d != name and not name.startswith(d + ".")}
    return graph


def test_imports_have_no_cycles():
    graph = import_graph()
    state, cycle = {}, []

    def visit(node, path):
        state[node] = "open"
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                cycle.extend(path + [node, dep])
                return True
            if dep not in state and visit(dep, path + [node]):
                return True
        state[node] = "done"
        return False

    for node in sorted(graph):
        if node not in state and visit(node, []):
            break
    assert not cycle, " -> ".join(cycle[cycle.index(cycle[-1]):])


# The layers of docs/code.md, bottom to top: a module imports from its own layer and those below, never above.
LAYERS = [
    {"gancli", "gancli.errors", "gancli.version", "gancli.options", "gancli.registry", "gancli.devices",
     "gancli.latents"},
    {"gancli.data"}, {"gancli.store"}, {"gancli.quality"}, {"gancli.families"}, {"gancli.use"},
    {"gancli.evaluation"}, {"gancli.training"}, {"gancli.demo"}, {"gancli.cli", "gancli.__main__"},
]


def layer_of(module: str) -> int:
    for i, layer in enumerate(LAYERS):
        if module in layer or any(module.startswith(top + ".") for top in layer - {"gancli"}):
            return i
    raise AssertionError(f"{module} is in no layer of docs/code.md's map")


def test_imports_run_down_the_layers():
    upward = [f"{m} imports {d}" for m, deps in import_graph().items() for d in deps
              if layer_of(d) > layer_of(m) and not (m == "gancli" and d == "gancli.version")]
    assert not upward, upward


def test_the_package_shows_its_layers_not_a_flat_hall():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 12, top
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert folders == {m.split(".")[1] for layer in LAYERS for m in layer if m.count(".") == 1
                       and (PACKAGE / m.split(".")[1]).is_dir()}, folders


def test_no_module_class_or_function_outgrows_one_reading():
    """At most 500 lines a module, 300 a class, 80 a function: each part reads top to bottom in one sitting."""
    too_long = []
    for path in PACKAGE.rglob("*.py"):
        source = path.read_text()
        if len(source.splitlines()) > 500:
            too_long.append(f"{path.relative_to(PACKAGE)}: {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source)):
            limit = 300 if isinstance(node, ast.ClassDef) else 80 if isinstance(
                node, (ast.FunctionDef, ast.AsyncFunctionDef)) else None
            if limit and node.end_lineno - node.lineno + 1 > limit:
                too_long.append(f"{path.relative_to(PACKAGE)}: {node.name} {node.end_lineno - node.lineno + 1} lines")
    assert not too_long, too_long


def test_no_private_name_is_used_across_modules():
    """A name with a leading underscore is its module's own: another module that needs it needs a public name."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    found = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        imported = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gancli"):
                for a in node.names:
                    full = f"{node.module}.{a.name}"
                    if full in modules:
                        imported[a.asname or a.name] = full
                    elif a.name.startswith("_") and not a.name.startswith("__"):
                        found.append(f"{name} imports {node.module}.{a.name}")
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                    node.value.id in imported and node.attr.startswith("_") and not node.attr.startswith("__"):
                found.append(f"{name} uses {imported[node.value.id]}.{node.attr}")
    assert not found, found


def test_the_registry_and_errors_are_leaves():
    graph = import_graph()
    assert graph["gancli.errors"] == set()
    assert graph["gancli.registry"] <= {"gancli.errors"}
    assert graph["gancli.options"] <= {"gancli.errors"}


# what config.json's "task" says of a model (the Hub's metadata); code asks the model's class what it can do instead
TASKS = {"unconditional", "conditional", "translation", "text-to-image", "super-resolution"}


def test_the_loop_and_the_cli_name_no_family():
    """No `arch == "dcgan"` or `task == "translation"` test outside a family's own module."""
    names = set(catalog.all_families()) | TASKS
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "families":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare) and any(isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn))
                                                     for op in node.ops):
                consts = [c.value for c in [node.left, *node.comparators] if isinstance(c, ast.Constant)]
                assert not set(consts) & names, f"{path.name}:{node.lineno} compares with a family name"


def test_every_option_is_declared_once():
    seen = {}
    for fam in catalog.all_families().values():
        for o in fam.declared():
            if o.name in seen:
                assert seen[o.name] == o, f"{o.name} is declared twice, differently"
            seen[o.name] = o
            assert o.help and o.type in (int, float, str, bool), o.name
    flags = [o.spelling for o in seen.values() if o.cli]
    assert len(flags) == len(set(flags))


@pytest.mark.parametrize("name", sorted(catalog.all_families()))
def test_family_contract(name):
    fam = catalog.get(name)
    assert fam.description
    for o in fam.options:
        assert o.name not in {x.name for x in LOOP}
    for key in fam.defaults:  # a family's default is for an option it has
        assert key in {o.name for o in fam.declared()}, (name, key)
    required = [p.name for p in inspect.signature(fam.build).parameters.values() if p.default is p.empty]
    nets = fam.build(**{k: 3 for k in required})  # what a model folder must say (class counts, a vocabulary)
    assert set(nets) == set(fam.networks) and "generator" in nets
    assert set(fam.exported) <= set(nets)


def test_loaded_models_name_no_family_attribute_outside_families():
    """A family's use-time abilities are its own classes (``Family.abilities``), mixed into the model it loads: no
    module outside families/ reaches into a family's networks (a StyleGAN's mapping or synthesis)."""
    private = {"mapping", "synthesis", "mixed_styles", "levels"}
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "families":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in private and \
                    isinstance(node.value, ast.Attribute) and node.value.attr == "generator":
                raise AssertionError(f"{path.name}:{node.lineno} reaches into generator.{node.attr}")


@pytest.mark.parametrize("name", sorted(catalog.all_families()))
def test_a_familys_model_class_is_declared_and_keeps_its_abilities_promises(name):
    """A loaded model is an instance of a class written with the families (its own module, or a sibling it shares
    with others: translators', captioned models'), never one made at run time; every operation its abilities
    declare is one of its methods."""
    from gancli.families.model import GANModel

    fam = catalog.get(name)
    cls = fam.model_class
    assert issubclass(cls, GANModel)
    assert cls is GANModel or cls.__module__.startswith("gancli.families."), cls
    for ability in cls.abilities:
        assert ability.operations or ability.options, ability.name
        assert all(callable(getattr(cls, op, None)) or isinstance(getattr(cls, op, None), property)
                   for op in ability.operations), ability.name


def test_no_class_is_made_at_run_time():
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "type":
                assert len(node.args) == 1, f"{path.name}:{node.lineno} makes a class with type()"


def test_a_new_use_time_option_is_one_family_module_away(tiny_model_dir, tmp_path, monkeypatch):
    """What docs/code.md promises: a family that brings a use-time option declares it on an ability of its model
    class, and `gan sample` takes it, lists it in --help, and other models refuse it in one line, with no edit
    elsewhere."""
    import json

    import numpy as np
    from PIL import Image
    from typer.testing import CliRunner

    from gancli import registry
    from gancli.cli import app
    from gancli.families.abilities import GENERATE, Ability
    from gancli.families.dcgan import DCGAN
    from gancli.families.model import GANModel
    from gancli.options import Option

    class BrightModel(GANModel):
        abilities = (Ability("brightening", options=(
            Option("brightness", float, None, "Add this to every pixel.", operations=(GENERATE,)),)),)

        def generate(self, z, labels=None, batch_size=256, brightness=None, **use):
            for batch in super().generate(z, labels, batch_size, **use):
                yield (batch + (brightness or 0.0)).clamp(-1, 1)

        def describe_use(self, brightness=None, **rest):
            return ([] if brightness is None else [f"brightness {brightness:g}"]) + super().describe_use(**rest)

    class BrightDCGAN(DCGAN):
        name = "bright-dcgan"
        model_class = BrightModel

    monkeypatch.setitem(registry._FAMILIES, BrightDCGAN.name, BrightDCGAN())
    config = json.loads((tiny_model_dir / "config.json").read_text())
    bright = tmp_path / "bright"
    bright.mkdir()
    for f in tiny_model_dir.iterdir():
        (bright / f.name).write_bytes(f.read_bytes())
    (bright / "config.json").write_text(json.dumps(config | {"architecture": "bright-dcgan"}))
    run = lambda *a: CliRunner().invoke(app, [str(x) for x in a], env={"COLUMNS": "200"})
    assert "bright-dcgan models" in run("sample", "--help").output
    plain, lit = tmp_path / "plain.png", tmp_path / "lit.png"
    assert run("sample", bright, "-n", 4, "-o", plain).exit_code == 0
    r = run("sample", bright, "-n", 4, "-o", lit, "--brightness", "0.5")
    assert r.exit_code == 0 and "brightness 0.5" in r.output, r.output
    assert np.asarray(Image.open(lit), float).mean() > np.asarray(Image.open(plain), float).mean() + 20
    r = run("sample", tiny_model_dir, "-n", 4, "-o", tmp_path / "x.png", "--brightness", "0.5")
    assert r.exit_code == 2 and "--brightness is for bright-dcgan models" in r.output
