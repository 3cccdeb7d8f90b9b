"""The package's shape: arrows run one way, shared helpers have a home, plots need no PyMC.

Every module of bayeshrink is parsed with ``ast``; its imports (at module level and inside
functions, resolved when relative) make a directed graph. A package's ``__init__`` importing its
own submodules is the normal downward arrow and is left out; everything else counts.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import bayeshrink

ROOT = Path(bayeshrink.__file__).parent
CORE = {
    "bayeshrink.api",
    "bayeshrink.data",
    "bayeshrink.display",
    "bayeshrink.engines",
    "bayeshrink.errors",
    "bayeshrink.estimate",
    "bayeshrink.frames",
    "bayeshrink.results",
    "bayeshrink.shrinkage",
}
NO_PYMC = {"bayeshrink.plots", "bayeshrink.posterior"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_package(name: str, modules: dict[str, Path]) -> bool:
    return modules[name].name == "__init__.py"


def _imports(name: str, path: Path, modules: dict[str, Path]):
    """(imported module, imported names, line) for every import in the module, resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if _is_package(name, modules) else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [a.name for a in node.names]
            # `from . import x` / `from .pkg import sub`: the submodule itself is imported
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in modules]
            yield target, [n for n in names if f"{target}.{n}" not in modules], node.lineno
            for sub in subs:
                yield sub, [], node.lineno


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for target, _, _ in _imports(name, path, modules):
            if target not in modules or target == name:
                continue
            if _is_package(name, modules) and target.startswith(name + "."):
                continue  # a package's __init__ importing its own submodules: downward
            graph[name].add(target)
    return graph


def _reach(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in graph[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_the_parser_sees_the_known_arrows():
    # a guard against a graph that is empty because the parser missed everything
    graph = _graph()
    assert "bayeshrink.frames" in graph["bayeshrink.data"]
    assert "bayeshrink.posterior" in graph["bayeshrink.plots"]
    assert "bayeshrink.bayes.model" in graph["bayeshrink.bayes.oneway"]
    assert "bayeshrink.lmm" in _reach(graph, "bayeshrink.fitting")  # imported in a function


def test_no_import_cycles():
    graph = _graph()
    cycles = [m for m in graph if m in _reach(graph, m)]
    assert cycles == [], f"modules on an import cycle: {cycles}"


def test_no_module_imports_another_modules_private_names():
    modules = _modules()
    bad = []
    for name, path in modules.items():
        for target, names, line in _imports(name, path, modules):
            if not target.startswith("bayeshrink") or target == name:
                continue
            bad += [f"{name}:{line} {target}.{n}" for n in names if n.startswith("_")]
    assert bad == []


def test_the_numerical_core_never_imports_bayes_or_plots():
    graph = _graph()
    for name in sorted(CORE | {m for m in graph if m.startswith("bayeshrink.lmm")}):
        reached = _reach(graph, name)
        assert not {m for m in reached if m.startswith(("bayeshrink.bayes", "bayeshrink.plots"))}, (
            name
        )


@pytest.mark.parametrize("name", sorted(NO_PYMC))
def test_plots_and_posterior_summaries_never_import_pymc(name):
    modules = _modules()
    graph = _graph()
    for module in {name} | _reach(graph, name):
        for target, _, line in _imports(module, modules[module], modules):
            assert target.split(".")[0] not in ("pymc", "pytensor"), f"{module}:{line}"
        assert not module.startswith("bayeshrink.bayes"), f"{name} reaches {module}"


def test_at_run_time_plots_and_the_package_load_without_pymc():
    code = (
        "import sys\n"
        "import bayeshrink as bs\n"
        "assert 'pymc' not in sys.modules and 'matplotlib' not in sys.modules, 'bayeshrink'\n"
        "import bayeshrink.plots, bayeshrink.posterior\n"
        "fit = bs.demo_fits()['2']\n"
        "bs.plot_triplot(fit)\n"
        "assert 'pymc' not in sys.modules, 'plots'\n"
        "assert 'bayeshrink.bayes' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={"MPLBACKEND": "Agg", **_env()})


def _env():
    import os

    return {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}


def test_every_error_and_warning_is_exported():
    import inspect

    from bayeshrink import errors

    classes = {
        n
        for n, obj in vars(errors).items()
        if inspect.isclass(obj) and issubclass(obj, (Exception, Warning))
    }
    assert classes <= set(bayeshrink.__all__)
    assert all(getattr(bayeshrink, n) is getattr(errors, n) for n in classes)
    assert {"FormulaError", "ConvergenceWarning", "DivergenceWarning"} <= classes
    # no error or warning class is defined anywhere else
    for name, path in _modules().items():
        if name == "bayeshrink.errors":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
                assert not any(b.endswith(("Error", "Warning")) for b in bases), (name, node.name)


#: A module is one idea a reader can hold: about 800 lines at most. These are older and may only
#: shrink (the number is the ceiling), until they are split.
MAX_LINES = 800
OVERSIZE = {"bayeshrink.plots": 1000, "bayeshrink.lmm.pls": 1000, "bayeshrink.lmm.multi": 880}


def test_no_module_is_longer_than_about_800_lines():
    too_long = {}
    for name, path in _modules().items():
        n = len(path.read_text().splitlines())
        if n > OVERSIZE.get(name, MAX_LINES):
            too_long[name] = n
    assert too_long == {}, f"split these modules: {too_long}"
    # the after-fit methods are a subpackage of small modules, not one file
    assert "bayeshrink.inference.predict" in _modules()
