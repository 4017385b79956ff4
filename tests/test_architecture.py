"""Data flows one way: a fer_helpers module never imports one above it in the stack, and the
report is built from a run's artifacts, never by importing the training code."""
import ast

from conftest import ROOT

#: The package's stack, bottom to top (the developers' guide: data → preprocessing → models →
#: training → evaluation / Grad-CAM / error analysis → figures → report; the command line on top).
#: A module may import only modules of a lower level, also inside functions.
STACK = [
    {"labels"},
    {"demo", "artifacts"},
    {"data", "layers"},
    {"preprocessing"},
    {"models"},
    {"training", "export"},
    {"evaluation"},
    {"gradcam", "errors", "inference", "release"},
    {"explorer"},
    {"figures"},
    {"report"},
    {"runner"},
    {"__main__", "__init__"},
]
LEVEL = {name: i for i, names in enumerate(STACK) for name in names}


def package_imports(path) -> set[str]:
    """Sibling modules a file imports (``from . import x``, ``from .x import y``), at any depth."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fer_helpers."):
            found.add(node.module.split(".")[1])
    return found


def test_every_module_has_a_place_in_the_stack():
    modules = {p.stem for p in (ROOT / "fer_helpers").glob("*.py")}
    assert modules == set(LEVEL), f"place new modules in STACK: {sorted(modules ^ set(LEVEL))}"


def test_no_module_imports_one_above_it():
    upward = [f"{p.stem} imports {m}" for p in sorted((ROOT / "fer_helpers").glob("*.py"))
              for m in sorted(package_imports(p)) if LEVEL[m] >= LEVEL[p.stem]]
    assert upward == []


def test_the_report_does_not_reach_the_training_code():
    seen, todo = set(), ["report"]
    while todo:                               # everything report imports, directly or not
        module = todo.pop()
        for m in package_imports(ROOT / "fer_helpers" / f"{module}.py") - seen:
            seen.add(m)
            todo.append(m)
    assert "training" not in seen and "release" not in seen, sorted(seen)


def test_the_import_scan_sees_imports_inside_functions(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("from .data import x\n\ndef g():\n    from .training import y\n    from . import report\n")
    assert package_imports(f) == {"data", "training", "report"}


def test_no_repository_code_edits_sys_path():
    """The research package and the tests import the package as installed (pyproject's pythonpath)."""
    for folder in ("fer_helpers", "research", "benchmarks", "tests"):
        for path in (ROOT / folder).rglob("*.py"):
            assert "sys.path.insert" not in path.read_text(encoding="utf-8") or path.name == "test_architecture.py", path


def test_the_research_package_imports_and_the_package_never_imports_it():
    import importlib

    for path in sorted((ROOT / "research").glob("*.py")):
        importlib.import_module("research" if path.stem == "__init__" else f"research.{path.stem}")
    for path in (ROOT / "fer_helpers").rglob("*.py"):
        assert "research" not in package_imports(path) and "import research" not in path.read_text(encoding="utf-8")


def test_the_package_names_no_machine_run_or_date():
    """Research history (a CPU's or GPU's timings, dated runs) lives in docs/research_log.md; the
    package's code and docstrings say what the code does, on any machine."""
    import re

    history = re.compile(r"\b(H100|H200|A100|EPYC|Xeon|20[0-9]{2}-[01][0-9]-[0-3][0-9])\b")
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in sorted((ROOT / "fer_helpers").glob("*.py"))
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if history.search(line)]
    assert hits == []
