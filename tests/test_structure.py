"""The package's structure, read from its source: no import cycles, no private name imported
from another module, no package facade imported from inside the package, one registry per
name list."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "jaxnn"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}
PACKAGES = {name for name, p in MODULES.items() if p.name == "__init__.py"}


def _imports(name: str) -> list[tuple[str, str | None, int]]:
    """Every ``(module, imported name or None, line)`` a module imports, anywhere in it
    (function-level and ``TYPE_CHECKING`` imports count: they are dependencies too)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            out += [(base, alias.name, node.lineno) for alias in node.names]
    return [(m, n, line) for m, n, line in out if m == "jaxnn" or m.startswith("jaxnn.")]


def _target(module: str, name: str | None) -> str:
    """The module an import depends on: ``from jaxnn import datasets`` is the submodule."""
    if name is not None and f"{module}.{name}" in MODULES:
        return f"{module}.{name}"
    return module


def _graph() -> dict[str, set[str]]:
    return {name: {_target(m, n) for m, n, _ in _imports(name)} - {name} for name in MODULES}


def test_the_import_reader_sees_imports():
    # a test that could not fail would be a defect: the reader finds known edges
    graph = _graph()
    assert "jaxnn.backprop" in graph["jaxnn.spec"]
    assert "jaxnn.train.loops" in graph["jaxnn.train.compiled"]
    assert len(MODULES) > 30 and {"jaxnn", "jaxnn.train", "jaxnn.cli"} <= PACKAGES


def test_no_import_cycles():
    graph = _graph()
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt in graph and nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_no_private_name_is_imported_from_another_module():
    bad = [f"{MODULES[name].relative_to(ROOT.parent)}:{line}: from {m} import {n}"
           for name in MODULES for m, n, line in _imports(name)
           if n is not None and n.startswith("_") and not n.startswith("__")
           and _target(m, n) == m]
    assert not bad, "private names imported across modules:\n" + "\n".join(bad)


def _private_attributes(source: str, name: str) -> list[tuple[str, str, int]]:
    """``(module, attribute, line)`` for every private attribute (``_x``, not ``__x__``) the
    source of module ``name`` reads from another jaxnn module it bound to a name
    (``from jaxnn.train import compiled`` ... ``compiled._x``; ``import jaxnn.io as io``)."""
    package = name if MODULES.get(name, ROOT).name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(source)
    bound: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            bound.update({alias.asname: alias.name for alias in node.names
                          if alias.asname and alias.name.startswith("jaxnn.")})
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            bound.update({alias.asname or alias.name: f"{base}.{alias.name}"
                          for alias in node.names if f"{base}.{alias.name}" in MODULES})
    return [(bound[node.value.id], node.attr, node.lineno) for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and node.value.id in bound and bound[node.value.id] != name
            and node.attr.startswith("_") and not node.attr.startswith("__")]


def test_the_private_attribute_reader_sees_them():
    source = ("from jaxnn.train import compiled\nimport jaxnn.io as io\n"
              "from . import checks\nx = compiled._lbfgs_segment, io.load, checks._min_max\n"
              "y = io.__name__\n")
    assert _private_attributes(source, "jaxnn.cli.train") == [
        ("jaxnn.train.compiled", "_lbfgs_segment", 4)]
    assert _private_attributes(source, "jaxnn.sweep") == [
        ("jaxnn.train.compiled", "_lbfgs_segment", 4), ("jaxnn.checks", "_min_max", 4)]


def test_no_private_name_is_reached_in_another_module():
    bad = [f"{MODULES[name].relative_to(ROOT.parent)}:{line}: {m}.{attr}"
           for name, path in MODULES.items()
           for m, attr, line in _private_attributes(path.read_text(), name)]
    assert not bad, "private names reached across modules:\n" + "\n".join(bad)


def test_modules_import_internal_modules_not_package_facades():
    # a package's __init__ re-exports for users; inside jaxnn a module imports the module
    # that defines a name (facades may import facades; __main__ runs the command's facade).
    # __version__ is the one exception.
    bad = []
    for name, path in MODULES.items():
        if path.name in ("__init__.py", "__main__.py"):
            continue
        for m, n, line in _imports(name):
            if m in PACKAGES and _target(m, n) == m and n != "__version__":
                bad.append(f"{path.relative_to(ROOT.parent)}:{line}: from {m} import {n}")
    assert not bad, "package facades imported from inside the package:\n" + "\n".join(bad)


def test_the_registries_are_keyed_by_the_names():
    from jaxnn import names
    from jaxnn.activations import ACTIVATIONS
    from jaxnn.outputs import OUTPUTS

    assert tuple(ACTIVATIONS) == names.ACTIVATIONS
    assert tuple(OUTPUTS) == names.OUTPUTS
    # every method name trains: tests/test_train.py::test_every_method_name_trains
    assert set(names.MANY_METHODS) <= set(names.METHODS)


def test_the_command_parses_without_jax():
    import subprocess
    import sys

    code = ("import sys, jaxnn.cli; jaxnn.cli.build_parser(); "
            "heavy = [m for m in ('jax', 'optax', 'scipy', 'matplotlib', 'rich') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_the_default_paths_leave_slow_imports_alone(tmp_path):
    """`fit`'s default method needs no `scipy.optimize` (0.25-0.35 s to import) and no optax
    (0.05-0.1 s, 160 modules), and `jaxnn train` no scikit-learn (1.1-1.3 s for
    `sklearn.metrics`): each imports them only where a path that needs them runs (scipy's
    other methods, adam and sgd, the digits dataset)."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np, jaxnn\n"
        "rng = np.random.default_rng(0)\n"
        "X, y = rng.random((40, 8)), rng.integers(0, 3, 40)\n"
        "p0 = jaxnn.init_params(0, (8, 5, 3))\n"
        "r = jaxnn.fit(p0, X, y, maxiter=3)\n"
        "assert r.n_iter == 3, r\n"
        "print('scipy.optimize' in sys.modules, 'optax' in sys.modules)\n"
        "jaxnn.fit(p0, X, y, maxiter=3, method='CG')\n"
        "print('scipy.optimize' in sys.modules, 'optax' in sys.modules)\n"
        "r = jaxnn.fit(p0, X, y, maxiter=3, method='adam')\n"
        "import optax\n"
        "s = jaxnn.fit(p0, X, y, maxiter=3, method=optax.adam(1e-3))\n"
        "print('optax' in sys.modules, r.cost == s.cost)\n"
        "import typing\n"  # the annotations naming optax still resolve
        "print(typing.get_type_hints(jaxnn.fit)['method'] == str | optax.GradientTransformation)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["False", "False", "True", "False", "True", "True", "True"]

    np_data = tmp_path / "data.npz"
    import numpy as np

    rng = np.random.default_rng(1)
    np.savez(np_data, X=rng.random((60, 8)), y=rng.integers(0, 3, 60))
    code = (
        "import sys\n"
        "from jaxnn.cli import main\n"
        f"status = main(['train', '--data', {str(np_data)!r}, '--iterations', '2', "
        f"'--out', {str(tmp_path / 'run')!r}])\n"
        "print(status, 'sklearn' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split()[-2:] == ["0", "False"]
