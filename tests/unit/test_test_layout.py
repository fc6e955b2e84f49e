"""The test suites share code through `tests.helpers` only.

A test module that imports another test module (or a conftest) runs that module's
fixtures and tests by side effect and ties two suites together by accident; helpers in
`tests/helpers/` are imported by name, fixtures stay in conftest files.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
HELPERS = "tests.helpers"


def _imported_modules(path: Path, root: Path) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of every import in `path`; relative ones spelled out in full.

    For `from package import name` both `package` and `package.name` are given, since
    `name` may be a module (`from tests.integration import test_transport`).
    """
    package = path.relative_to(root.parent).parent.parts
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            yield node.lineno, module
            yield from ((node.lineno, f"{module}.{alias.name}") for alias in node.names)


def _is_module(dotted: str, root: Path) -> bool:
    """True if `dotted` (tests.x.y) is a module or package under `root`'s parent."""
    path = root.parent.joinpath(*dotted.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _forbidden(dotted: str, root: Path) -> bool:
    """Test code other than the helpers: a test module, a conftest, a suite's module."""
    if dotted == HELPERS or dotted.startswith(HELPERS + "."):
        return False
    if not dotted.startswith("tests."):
        return False
    return _is_module(dotted, root) and not (root.parent / dotted.replace(".", "/")).is_dir()


def layout_problems(root: Path = TESTS) -> list[str]:
    """Every import of test code from a test module, a conftest or a helper."""
    checked = {
        *root.rglob("test_*.py"),
        *root.rglob("conftest.py"),
        *(root / "helpers").rglob("*.py"),
    }
    problems = []
    for path in sorted(checked):
        for line, dotted in _imported_modules(path, root):
            if _forbidden(dotted, root):
                problems.append(f"{path.relative_to(root.parent)}:{line} imports {dotted}")
    return problems


def test_test_modules_and_conftests_import_shared_code_only_from_tests_helpers() -> None:
    assert layout_problems() == []


def test_the_check_sees_an_import_of_a_test_module_or_a_conftest(tmp_path: Path) -> None:
    root = tmp_path / "tests"
    for package in (root, root / "helpers", root / "suite"):
        package.mkdir(exist_ok=True)
        (package / "__init__.py").write_text("")
    (root / "helpers" / "rest.py").write_text("class Api: ...\n")
    (root / "suite" / "test_b.py").write_text("def helper() -> None: ...\n")
    (root / "suite" / "conftest.py").write_text("fixture_data = 1\n")
    (root / "suite" / "support.py").write_text("shared = 1\n")
    (root / "suite" / "test_a.py").write_text(
        "from tests.helpers.rest import Api\n"
        "from tests.suite.test_b import helper\n"
        "from .conftest import fixture_data\n"
        "from tests.suite import support\n"
        "import tests.suite.test_b\n"
    )
    problems = layout_problems(root)
    assert problems == [
        "tests/suite/test_a.py:2 imports tests.suite.test_b",
        "tests/suite/test_a.py:3 imports tests.suite.conftest",
        "tests/suite/test_a.py:4 imports tests.suite.support",
        "tests/suite/test_a.py:5 imports tests.suite.test_b",
    ], problems
