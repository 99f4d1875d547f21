"""The house's layering, checked statically on every module's imports (module-level and
inside functions alike):

* the compression library never imports the course tooling (``nncompress.course``);
* foundation modules never import method modules;
* only the runner's executor imports papermill;
* no import cycle between the package's modules.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "lib" / "nncompress"

FOUNDATION = ("data", "models", "metrics", "latency", "deploy", "cache", "train", "stats", "storage", "plots")
METHODS = ("distill", "prune", "quantize", "lowrank", "design", "early_exit", "pipeline")
# entry points that are allowed to reach into the course: the package's lazy shortcuts
# (nc.record / nc.claim) and the ``python -m nncompress.run`` command name
COURSE_ENTRY_POINTS = ("nncompress", "nncompress.run")


def module_name(path: Path) -> str:
    parts = ["nncompress", *path.relative_to(ROOT).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    base = module.split(".") if is_package else module.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, *([target] if target else [])])


def imports(name: str) -> set[str]:
    """Every module ``name`` imports (absolute dotted names; ``from pkg import sub`` counts
    as importing ``pkg.sub`` when that is a module)."""
    path = MODULES[name]
    is_package = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module if node.level == 0 else _resolve(name, is_package, node.level, node.module)
            out.add(base)
            for alias in node.names:
                if f"{base}.{alias.name}" in MODULES:
                    out.add(f"{base}.{alias.name}")
    return {m for m in out if m}


def _top(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def _in(name: str, tops) -> bool:
    return _top(name) in tops


def test_modules_found():
    assert "nncompress.train" in MODULES and "nncompress.course.runner" in MODULES


@pytest.mark.parametrize("name", [m for m in MODULES if not _in(m, ("course",)) and m not in COURSE_ENTRY_POINTS])
def test_library_never_imports_the_course(name):
    bad = sorted(m for m in imports(name) if m == "nncompress.course" or m.startswith("nncompress.course."))
    assert not bad, f"{name} (library) imports course tooling: {bad}"


@pytest.mark.parametrize("name", [m for m in MODULES if _in(m, FOUNDATION)])
def test_foundation_never_imports_methods(name):
    bad = sorted(m for m in imports(name) if m.startswith("nncompress.") and _in(m, METHODS))
    assert not bad, f"{name} (foundation) imports method modules: {bad}"


def test_only_the_executor_imports_papermill():
    users = sorted(m for m in MODULES if any(i == "papermill" or i.startswith("papermill.") for i in imports(m)))
    assert users == ["nncompress.course.execute"]


def test_no_import_cycle():
    graph = {m: sorted(i for i in imports(m) if i in MODULES and i != m) for m in MODULES}
    # a package's __init__ re-exporting its submodules is an edge package -> submodule; a
    # submodule importing its own package (``from . import x`` of a name defined in __init__)
    # closes a cycle and is reported
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []
    counter = [0]

    def strongconnect(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            strongconnect(v)
    assert not cycles, f"import cycles: {cycles}"


def test_submodule_list_is_not_hand_kept():
    import nncompress
    import nncompress.course

    top = {p.stem if p.suffix else p.name for p in ROOT.iterdir()
           if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir() and (p / "__init__.py").exists())}
    assert set(nncompress._SUBMODULES) == top
    course = {m.split(".")[2] for m in MODULES if m.startswith("nncompress.course.") and m.count(".") >= 2}
    assert set(nncompress.course._SUBMODULES) == course


def test_no_private_names_across_modules():
    """``from x import _private`` between modules means a name that should be public."""
    offenders = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("nncompress")):
                offenders += [f"{name}: {a.name}" for a in node.names
                              if a.name.startswith("_") and not a.name.startswith("__")]
    assert not offenders, offenders


def test_listing_chapters_imports_no_library_module():
    """``nncompress.course.chapters`` lists chapters without importing torch or any method module."""
    import subprocess
    import sys

    code = ("import sys, nncompress.course.chapters as c; names = c.names(); "
            "print(len(names), sorted(m for m in sys.modules if m == 'torch' or m.startswith('nncompress.') "
            "and not m.startswith('nncompress.course')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split(" ", 1)
    assert int(out[0]) >= 13 and out[1].strip() == "[]"
