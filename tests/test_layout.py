"""How the code is organised (docs/code.md), held as tests: imports run one way, the loop names no family, an
option is declared once, and every family keeps the contract the loop and GANModel rely on."""
import ast
from pathlib import Path

import pytest

from gancli import catalog
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
                for a in node.names:  # `from gancli import hub` imports the module gancli.hub
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


def test_the_registry_and_errors_are_leaves():
    graph = import_graph()
    assert graph["gancli.errors"] == set()
    assert graph["gancli.registry"] <= {"gancli.errors"}
    assert graph["gancli.options"] <= {"gancli.errors"}


def test_the_loop_and_the_cli_name_no_family():
    """No `arch == "dcgan"` or `task == "translation"` test outside a family's own module."""
    tasks = {"translation", "conditional", "unconditional", "text-to-image", "super-resolution"}
    names = set(catalog.all_families()) | tasks
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
    assert fam.description and fam.task in ("unconditional", "conditional", "translation", "text-to-image", "super-resolution")
    for o in fam.options:
        assert o.name not in {x.name for x in LOOP}
    for key in fam.defaults:  # a family's default is for an option it has
        assert key in {o.name for o in fam.declared()}, (name, key)
    nets = fam.build(**{"acgan": {"num_classes": 3}, "design": {"design_classes": 3},
                        "ssgan": {"ssgan_classes": 3}, "stackgan": {"vocab_size": 5, "text_classes": 2}}.get(name, {}))
    assert set(nets) == set(fam.networks) and "generator" in nets
    assert set(fam.exported) <= set(nets)
