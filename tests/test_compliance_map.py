"""docs/compliance.md cannot drift: every rule of temoin.law.rules has a row; every row names code that imports
and tests that exist, or says "not enforced:" and why; the rule index is the one the module prints."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from functools import cache
from pathlib import Path

import pytest

import temoin
from temoin.law.rules import BY_ID, RULES, index_markdown

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "compliance.md"
TESTS = ROOT / "tests"

ROW_ID = re.compile(r"^\*\*([A-Z]\d{2})\*\*")
BACKTICKED = re.compile(r"`([^`]+)`")
DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
TEST_REF = re.compile(r"(test_[A-Za-z0-9_]+\.py)::((?:[A-Za-z_][A-Za-z0-9_]*::)?test_[A-Za-z0-9_]+)")
NOT_ENFORCED = "not enforced:"


def _map_rows(text: str) -> list[tuple[str, str, str]]:
    """(rule, code, tests) cells of the map table (the rows after the 'Rule | Enforced by' header)."""
    rows, inside = [], False
    for line in text.splitlines():
        if line.startswith("| Rule | Enforced by"):
            inside = True
            continue
        if inside:
            if not line.startswith("|"):
                break
            if line.startswith("| ---"):
                continue
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            assert len(cells) == 3, f"map row is not | rule | code | test |: {line[:120]}"
            rows.append((cells[0], cells[1], cells[2]))
    return rows


@cache
def _packages() -> frozenset[str]:
    return frozenset(m.name for m in pkgutil.iter_modules(temoin.__path__))


def code_references(cell: str) -> list[str]:
    """Backticked dotted names whose head is a module of temoin (`vault.retention.sweep`); a call's arguments
    (`rights.copies.copy_stream(deliver=True)`) are dropped. Other backticked text (events, columns) is prose."""
    refs = []
    for token in BACKTICKED.findall(cell):
        name = token.split("(", 1)[0].strip().replace(":", ".")
        name = name.removeprefix("temoin.")
        if DOTTED.match(name) and name.split(".", 1)[0] in _packages():
            refs.append(name)
    return refs


def resolve(name: str) -> object:
    """Import the longest module prefix of temoin.<name>, then get the remaining attributes."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module("temoin." + ".".join(parts[:cut]))
        except ModuleNotFoundError as exc:
            if exc.name and not ("temoin." + ".".join(parts[:cut])).startswith(exc.name):
                raise  # the module exists but one of its imports is missing: a real error
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(name)


@cache
def _tests_of(filename: str) -> frozenset[str]:
    path = TESTS / filename
    if not path.exists():
        return frozenset()
    tree = ast.parse(path.read_text("utf-8"))
    found = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_"):
            found.add(node.name)
        elif isinstance(node, ast.ClassDef):
            found |= {
                f"{node.name}::{n.name}"
                for n in node.body
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name.startswith("test_")
            }
    return frozenset(found)


def test_references_resolve_and_are_rejected_when_missing() -> None:
    """The checker itself: a real function resolves, a renamed one does not, prose is not a reference."""
    assert resolve("vault.retention.sweep") is importlib.import_module("temoin.vault.retention").sweep
    assert callable(resolve("law.access.Motive"))
    with pytest.raises(AttributeError):
        resolve("vault.retention.sweep_everything")
    with pytest.raises((ImportError, AttributeError)):
        resolve("vault.no_such_module.f")
    assert code_references(
        "`consultation.refused`, `recordings.hold`, `vault.holds.lift_hold` and "
        "`rights.copies.copy_stream(deliver=True)`"
    ) == ["vault.holds.lift_hold", "rights.copies.copy_stream"]
    assert "test_every_route_against_every_role" in _tests_of("test_access.py")
    assert "test_no_such_thing" not in _tests_of("test_access.py")


def test_the_rule_list_is_well_formed() -> None:
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids)), "a rule id is used twice"
    assert all(re.fullmatch(r"[A-Z]\d{2}", i) for i in ids)
    assert all(r.reference and r.summary for r in RULES)


def test_the_rule_index_in_the_doc_is_the_modules() -> None:
    text = DOC.read_text("utf-8")
    begin, end = "<!-- rules:begin -->\n", "<!-- rules:end -->"
    assert begin in text and end in text, "docs/compliance.md lost its rule index markers"
    written = text.split(begin, 1)[1].split(end, 1)[0]
    assert written == index_markdown(), (
        "the rule index in docs/compliance.md differs from temoin.law.rules: "
        "paste the output of `python -m temoin.law.rules` between the markers"
    )


def test_every_rule_has_a_row_and_every_row_a_known_rule() -> None:
    rows = _map_rows(DOC.read_text("utf-8"))
    assert rows, "no map table found in docs/compliance.md"
    seen = set()
    for rule, _, _ in rows:
        m = ROW_ID.match(rule)
        assert m, (
            f"map row {rule[:60]!r} does not start with a rule id (**R07**): add its rule to "
            "temoin.law.rules if it is new"
        )
        assert m.group(1) in BY_ID, f"map row names rule {m.group(1)}, which temoin.law.rules does not list"
        seen.add(m.group(1))
    missing = [r.id for r in RULES if r.id not in seen]
    assert not missing, f"rules with no row in docs/compliance.md: {missing}"


def test_every_row_names_code_and_tests_that_exist_or_says_why_not() -> None:
    problems = []
    for rule, code, tests in _map_rows(DOC.read_text("utf-8")):
        rid = rule.split("**")[1] if rule.startswith("**") else rule[:20]
        refs = code_references(code)
        test_refs = TEST_REF.findall(tests)
        if NOT_ENFORCED in code.lower():
            continue
        if not refs:
            problems.append(f"{rid}: no code reference (write `module.function`, or 'not enforced: why')")
        if not test_refs:
            problems.append(f"{rid}: no test (write test_file.py::test_name, or 'not enforced: why')")
        for ref in refs:
            try:
                resolve(ref)
            except (ImportError, AttributeError) as exc:
                problems.append(f"{rid}: `{ref}` does not resolve ({exc})")
        for filename, name in test_refs:
            if name not in _tests_of(filename):
                problems.append(f"{rid}: tests/{filename}::{name} does not exist")
    assert not problems, "docs/compliance.md:\n" + "\n".join(problems)
