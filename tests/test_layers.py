"""The core's wings import one way: a wing imports only from the wings below it, and never integrations.

The order is drawn in `keyword_extractor/__init__.py`; this test holds the code to it, lazy imports
inside functions included.
"""

from __future__ import annotations

import ast
from pathlib import Path

from keyword_extractor.common.paths import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "keyword_extractor"
# bottom first; wings on the same level may not import each other
LEVELS = (("common",), ("text",), ("data",), ("model", "feedback"), ("inference",), ("training", "evaluation"))
LEVEL = {wing: height for height, wings in enumerate(LEVELS) for wing in wings}


def _imported_wings(path: Path) -> set[str]:
    """The first-level parts of keyword_extractor that a module imports, wherever the import stands."""
    wings = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] != "keyword_extractor":
                continue
            if len(parts) > 1:
                wings.add(parts[1])
            else:
                wings.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            wings.update(a.name.split(".")[1] for a in node.names if a.name.startswith("keyword_extractor."))
    return wings


def upward_imports(package: Path = PACKAGE) -> list[str]:
    problems = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        if len(relative.parts) < 2 or relative.parts[0] == "integrations":
            continue
        wing = relative.parts[0]
        for target in sorted(_imported_wings(path) - {wing, "__version__"}):
            if target == "integrations":
                problems.append(f"{relative} imports integrations (only integrations import the wings)")
            elif target not in LEVEL:
                problems.append(f"{relative} imports keyword_extractor.{target}, which belongs to no wing")
            elif LEVEL[target] >= LEVEL[wing]:
                problems.append(f"{relative} ({wing}) imports {target}, which is not below it")
    return problems


def test_every_module_of_the_core_is_in_a_wing():
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert loose == []
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and not p.name.startswith("__")} == {*LEVEL, "integrations"}


def test_wings_import_only_downwards():
    assert upward_imports() == []


def test_the_check_sees_an_upward_import(tmp_path):
    """The check itself can fail: a planted model → training import, lazy, inside a function."""
    for wing in LEVEL:
        (tmp_path / wing).mkdir()
    (tmp_path / "model" / "planted.py").write_text(
        "def f():\n"
        "    from keyword_extractor.training.run import train\n"
        "    from keyword_extractor import integrations\n"
    )
    (tmp_path / "text" / "fine.py").write_text("from keyword_extractor.common.files import write_atomic\n")
    assert upward_imports(tmp_path) == [
        "model/planted.py imports integrations (only integrations import the wings)",
        "model/planted.py (model) imports training, which is not below it",
    ]


def _product_files() -> list[Path]:
    """Every Python file outside the tests: the core, the service, the app, flows, tasks, benchmarks, scripts."""
    files = [PROJECT_ROOT / name for name in ("service.py", "app.py")]
    for folder in ("keyword_extractor", "benchmarks", "flows", "tasks", "service_support", "app_support", "scripts"):
        files.extend((PROJECT_ROOT / folder).rglob("*.py"))
    return files


def test_product_code_imports_nothing_from_the_tests():
    """Benchmarks, flows, tasks, the service and the app stand on their own: `tests/` is imported by no one."""
    product = _product_files()
    offenders = []
    for path in product:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if any(name == "tests" or name.startswith("tests.") for name in names):
                offenders.append(str(path.relative_to(PROJECT_ROOT)))
    assert offenders == []


MAX_FUNCTION_LINES = 60


def test_no_function_outside_the_tests_is_longer_than_60_lines():
    """A longer function does several jobs: split it where a reader would name the parts."""
    product = _product_files()
    long = [
        f"{path.relative_to(PROJECT_ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path in product
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []


SHARED_OPTIONS = ("--model-dir", "--batch-size", "--device")


def test_shared_options_are_declared_once_in_common_cli():
    """`--model-dir`, `--batch-size` and `--device` mean the same everywhere: only `common.cli` declares them."""
    declared = [
        f"{path.relative_to(PROJECT_ROOT)}:{node.lineno} {node.args[0].value}"
        for path in _product_files()
        if path != PACKAGE / "common" / "cli.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call)
        and getattr(node.func, "attr", "") == "add_argument"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and node.args[0].value in SHARED_OPTIONS
    ]
    assert declared == []


def modules_with_parsers(package: Path = PACKAGE) -> list[str]:
    """Core modules other than a wing's `cli.py` / `__main__.py` that build a command line."""
    found = []
    for path in sorted(package.rglob("*.py")):
        if path.name in ("cli.py", "__main__.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            imported = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if "argparse" in imported or (isinstance(node, ast.ImportFrom) and node.module == "argparse"):
                found.append(str(path.relative_to(package)))
                break
    return found


def test_domain_modules_expose_functions_and_each_wing_keeps_its_command_lines_in_cli():
    """`validate`, `evaluate`, `predict_file`… are functions; the parsers that call them live in `<wing>/cli.py`."""
    assert modules_with_parsers() == []


def test_the_parser_check_sees_a_parser(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "validation.py").write_text("def main():\n    import argparse\n")
    (tmp_path / "data" / "cli.py").write_text("import argparse\n")
    assert modules_with_parsers(tmp_path) == ["data/validation.py"]
