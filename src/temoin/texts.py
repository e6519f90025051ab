"""The texts people read, French first: the gettext catalogue (web/locale/<lang>/LC_MESSAGES/messages.po) and
Babel's formats for dates and numbers. Low in the layers so the PDF makers (reports, extraction) speak from the
same catalogue as the pages; temoin.web.i18n adds the request and template side.

Labels of codes use msgctxt = the code's kind and msgid = the code: label("fr", "event", "ptz.aimed")."""

from __future__ import annotations

from datetime import date, datetime
from io import BytesIO
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import Translations

LANGS = ("fr", "en")
DEFAULT_LANG = "fr"
LOCALE_DIR = Path(__file__).parent / "web" / "locale"
PARIS = ZoneInfo("Europe/Paris")


def _load(lang: str) -> Translations:
    with (LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po").open("rb") as po:
        catalog = read_po(po, locale=lang)
    mo = BytesIO()
    write_mo(mo, catalog)  # in memory: the .po is the only file kept in the repository
    mo.seek(0)
    return Translations(mo, domain="messages")


TRANSLATIONS: dict[str, Translations] = {lang: _load(lang) for lang in LANGS}


def gettext(lang: str, msgid: str) -> str:
    """The text in `lang` (the English source when the catalogue lacks it)."""
    return str(TRANSLATIONS.get(lang, TRANSLATIONS[DEFAULT_LANG]).gettext(msgid))


def label(lang: str, kind: str, code: str) -> str:
    """The label of a code (msgctxt: its kind), or the code itself when it has none (e.g. a custom category)."""
    return str(TRANSLATIONS.get(lang, TRANSLATIONS[DEFAULT_LANG]).pgettext(kind, code))


def when(lang: str, value: date | datetime, time: bool = True, seconds: bool = True) -> str:
    """A date (and time, in Paris) as a person reads it. Day first in both languages (06/12/2026 23:40:00): the
    agents read and type dates that way, and every page and PDF shows them alike."""
    if isinstance(value, datetime):
        if not time:
            return format_date(value.astimezone(PARIS).date(), "dd/MM/yyyy", locale=lang)
        return format_datetime(
            value, "dd/MM/yyyy HH:mm:ss" if seconds else "dd/MM/yyyy HH:mm", tzinfo=PARIS, locale=lang
        )
    return format_date(value, "dd/MM/yyyy", locale=lang)


def number(lang: str, value: float, digits: int = 2) -> str:
    """A number in the locale's way (French 1,02; English 1.02), `digits` decimals at most."""
    return format_decimal(round(value, digits), format=f"#,##0.{'#' * digits}" if digits else "#,##0", locale=lang)


def for_scripts(lang: str) -> dict[str, Any]:
    """The whole catalogue of `lang` as data for the pages' scripts (one catalogue, no JS tables): `messages`
    (English msgid → text) and `labels` (kind → code → label)."""
    lang = lang if lang in LANGS else DEFAULT_LANG
    with (LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po").open("rb") as po:
        catalog = read_po(po, locale=lang)
    messages: dict[str, str] = {}
    labels: dict[str, dict[str, str]] = {}
    for m in catalog:
        if not m.id or not isinstance(m.id, str) or not m.string:
            continue
        if m.context:
            labels.setdefault(m.context, {})[m.id] = str(m.string)
        else:
            messages[m.id] = str(m.string)
    return {"lang": lang, "messages": messages, "labels": labels}
