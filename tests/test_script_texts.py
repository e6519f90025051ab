"""The pages' scripts speak from the one catalogue: every English text a script asks for has its French translation,
no script keeps a French/English table of its own, and the catalogue is served as JSON for them."""

from __future__ import annotations

import json
import re
from pathlib import Path

from temoin.texts import for_scripts
from temoin.web import i18n

STATIC = Path(i18n.__file__).parent / "static"
SCRIPTS = ("csu.js", "live-viewer.js", "i18n.js", "review.js", "rights-copy.js")


def _asked() -> tuple[set[str], set[tuple[str, str]]]:
    texts: set[str] = set()
    labels: set[tuple[str, str]] = set()
    for name in SCRIPTS:
        source = (STATIC / name).read_text(encoding="utf-8")
        texts |= {json.loads(f'"{m}"') for m in re.findall(r'\b(?:T|t)\("((?:[^"\\]|\\.)*)"', source)}
        labels |= set(re.findall(r'codeLabel\("(\w+)", "(\w+)"\)', source))
        for kind, codes in re.findall(r'labels\("(\w+)", \[([^\]]*)\]\)', source):
            labels |= {(kind, c) for c in re.findall(r'"(\w+)"', codes)}
    texts |= set(re.findall(r'data-i18n="([^"]+)"', (STATIC / "live-viewer.html").read_text(encoding="utf-8")))
    return texts, labels


def test_every_text_a_script_asks_for_has_a_french_translation() -> None:
    texts, labels = _asked()
    assert len(texts) > 50 and ("live_state", "requested") in labels  # the scan does find them
    french, english = for_scripts("fr"), for_scripts("en")
    for msgid in texts:
        assert french["messages"].get(msgid), f"no French for the script text {msgid!r}"
        assert english["messages"].get(msgid), f"not in the English catalogue: {msgid!r}"
    for kind, code in labels:
        assert french["labels"][kind].get(code) and english["labels"][kind].get(code), f"no label for {kind} {code}"


def test_no_script_keeps_a_table_of_french_and_english_texts() -> None:
    for name in SCRIPTS:
        source = (STATIC / name).read_text(encoding="utf-8")
        assert not re.search(r"\bfr: \{", source) and "Menace pour la sécurité" not in source, name


def test_the_catalogue_is_served_as_json_for_the_scripts(client) -> None:
    r = client.get("/i18n/fr.json")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    data = r.json()
    assert data["messages"]["Events channel connected"] == "Canal d'événements connecté"
    assert data["labels"]["event"]["ptz.aimed"] == "Caméra PTZ orientée vers l'agent"
    assert data["labels"]["problem"]["401"] == "Session expirée"
    assert client.get("/i18n/en.json").json()["labels"]["event"]["ptz.aimed"] == "PTZ camera aimed at the agent"
    missing = client.get("/i18n/de.json")
    assert missing.status_code == 404 and "fr, en" in missing.text
