"""The test suite's own layout: tests share helpers and fixtures through tests/helpers.py, tests/*_helpers.py and
conftest.py, never by importing another test module (that runs its tests' module-level code twice, and pytest
collects the imported fixtures under two names)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _imported_test_modules(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            names = [base] + [f"{base}.{alias.name}" if base else alias.name for alias in node.names]
        else:
            continue
        found += [
            f"{path.name}:{node.lineno} imports {name}"
            for name in names
            if name.split(".")[-1].startswith("test_")
            and name.split(".")[-1] != path.stem
            and (TESTS / f"{name.split('.')[-1]}.py").exists()
        ]
    return found


def test_no_test_module_imports_another():
    found = [line for path in sorted(TESTS.glob("*.py")) for line in _imported_test_modules(path)]
    assert not found, "move what is shared into tests/helpers.py or a tests/*_helpers.py module:\n" + "\n".join(found)


def test_the_check_sees_each_form_of_import(tmp_path):
    module = TESTS / "test_live.py"
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import tests.test_live\nfrom tests.test_live import entries\nfrom tests import test_live\n"
        "from .test_live import entries\nfrom tests.live_helpers import entries\n"
    )
    assert module.exists()
    assert [line.split(" imports ")[0] for line in _imported_test_modules(sample)] == [
        "sample.py:1",
        "sample.py:2",
        "sample.py:3",
        "sample.py:4",
    ]
