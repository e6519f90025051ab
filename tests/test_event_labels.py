"""Every event the code can write into the journal reads as a sentence, in French and in English: the journal
page, the CSU timeline, the incident timeline and the custody PDF show the label, never the raw code."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from temoin.journal.events import EVENTS
from temoin.web import i18n

SRC = Path(i18n.__file__).parents[1]  # src/temoin
EVENT = re.compile(r"^[a-z_]+(\.[a-z_]+)*$")


def _names(node: ast.expr) -> tuple[set[str], set[str]]:
    """The event names an expression can take: constants (either side of an `x if c else y`), and the fixed
    prefix of an f-string (whose endings the registry lists)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and EVENT.match(node.value):
        return {node.value}, set()
    if isinstance(node, ast.IfExp):
        a, b = _names(node.body), _names(node.orelse)
        return a[0] | b[0], a[1] | b[1]
    if isinstance(node, ast.JoinedStr) and isinstance(node.values[0], ast.Constant):
        return set(), {str(node.values[0].value)}
    return set(), set()


def _written() -> tuple[set[str], set[str]]:
    """Event names passed as `event=` (EntryDraft and the journal helpers), to a `_journal*` helper, or assigned
    to a variable named `event`, anywhere in the code."""
    names: set[str] = set()
    prefixes: set[str] = set()

    def add(node: ast.expr) -> None:
        n, p = _names(node)
        names.update(n)
        prefixes.update(p)

    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                for kw in node.keywords:
                    if kw.arg == "event":
                        add(kw.value)
                helper = getattr(node.func, "id", None) or getattr(node.func, "attr", "")
                if helper.startswith("_journal") or any(getattr(a, "id", "").startswith("_journal") for a in node.args):
                    for a in node.args:
                        if isinstance(a, ast.Constant) and isinstance(a.value, str) and "." in a.value:
                            add(a)
            elif isinstance(node, ast.Assign):
                targets = [t for tg in node.targets for t in (tg.elts if isinstance(tg, ast.Tuple) else [tg])]
                values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
                for target, value in zip(targets, values * len(targets) if len(values) == 1 else values):
                    if getattr(target, "id", None) == "event":
                        add(value)
    return names, prefixes


def test_every_event_the_code_writes_is_in_the_registry() -> None:
    names, prefixes = _written()
    assert {"live.requested", "ptz.aimed", "dispatch.order_sent", "signout"} <= names  # the scan does find them
    assert sorted(names - set(EVENTS)) == [], "journaled but not in temoin.journal.events"
    for prefix in prefixes:  # f"rights.copy.{state}": the registry lists the endings the code can produce
        assert any(e.startswith(prefix) for e in EVENTS), f"no event of the form {prefix}… in the registry"


def test_every_registered_event_has_a_sentence_in_french_and_in_english() -> None:
    for code in EVENTS:
        french, english = i18n.label("fr", "event", code), i18n.label("en", "event", code)
        assert french != code and english != code, f"no label for the event {code}"
        assert "_" not in french + english, f"a raw code in the label of {code}: {french} / {english}"
    assert i18n.label("fr", "event", "live.requested") == "L'agent a demandé une transmission en direct"
    assert i18n.label("fr", "event", "ptz.aimed") == "Caméra PTZ orientée vers l'agent"
