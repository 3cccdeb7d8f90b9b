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
NO_PYMC = {
    "bayeshrink.plots",
    "bayeshrink.plots_bayes",
    "bayeshrink.plots_glmm",
    "bayeshrink.plots_predictions",
    "bayeshrink.posterior",
}


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
            private = [n for n in names if n.startswith("_") and not n.endswith("__")]
            bad += [f"{name}:{line} {target}.{n}" for n in private]  # __version__ is public
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


def test_importing_bayeshrink_loads_no_heavy_layer():
    """``import bayeshrink`` stays light: scipy.optimize and scipy.stats, formulae, PyMC,
    matplotlib and the worked example load on first use (PEP 562 attributes)."""
    heavy = ("scipy.optimize", "scipy.stats", "formulae", "pymc", "matplotlib", "bayeshrink.demo")
    code = (
        "import sys\n"
        "import bayeshrink as bs\n"
        f"loaded = [m for m in {heavy!r} if m in sys.modules]\n"
        "assert not loaded, loaded\n"
        "bs.demo_fits\n"  # the lazy attributes still resolve
        "assert 'bayeshrink.demo' in sys.modules and bs.demo.SCENARIOS\n"
        "assert 'demo' in dir(bs) and 'demo_fits' in bs.__all__\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=_env())


def test_a_wheel_built_from_the_checkout_carries_the_data_and_the_explorer(tmp_path):
    """The wheel holds every bundled dataset and the explorer's script and styles (package
    data), built offline from a copy of the checkout (so no build/ lands in it)."""
    import shutil
    import zipfile

    pytest.importorskip("setuptools", reason="the test extra installs setuptools")
    src = tmp_path / "src"
    shutil.copytree(ROOT, src / "bayeshrink", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT.parent / name, src / name)
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-index", "--no-build-isolation"]
    subprocess.run([*pip, "-q", "-w", str(tmp_path / "out"), str(src)], check=True, env=_env())
    (wheel,) = (tmp_path / "out").glob("bayeshrink-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        p.relative_to(ROOT.parent).as_posix()
        for pattern in ("datasets/*.csv", "explorer/*.js", "explorer/*.css")
        for p in ROOT.glob(pattern)
    }
    assert {"bayeshrink/datasets/radon.csv", "bayeshrink/explorer/widget.js"} <= expected
    assert "bayeshrink/explorer/widget.css" in expected
    missing = sorted(expected - names)
    assert not missing, f"the wheel lacks {missing}: see [tool.setuptools.package-data]"
    modules = {p.relative_to(ROOT.parent).as_posix() for p in ROOT.rglob("*.py")}
    assert modules <= names
    assert not any(n.startswith("tests/") for n in names)
    # the light install: nutpie only with the `fast` extra, the suite's tools only with `test`
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(meta).decode()
    requires = [ln for ln in text.splitlines() if ln.startswith("Requires-Dist:")]
    core = [ln for ln in requires if "extra ==" not in ln]
    assert not any(p in ln for ln in core for p in ("nutpie", "pytest", "sphinx", "pyspark"))
    assert any("nutpie" in ln and 'extra == "fast"' in ln for ln in requires)


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
