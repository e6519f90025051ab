"""The web pages speak French first, English too. The choice is ?lang=, else a cookie, else Accept-Language.

The texts are gettext catalogues, locale/<lang>/LC_MESSAGES/messages.po, whose source strings are English.
Labels of codes (a request's status, a recording's trigger...) use msgctxt = the code's kind, msgid = the code,
so a template shows pgettext("status", r.status) and never the raw code. The .po files are read at import
(no compile step): a fresh checkout runs as it is. To add a text, see docs/i18n.md.
"""

from __future__ import annotations

from datetime import date, datetime
from io import BytesIO
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from fastapi import Request
from jinja2 import Environment, pass_context

LANGS = ("fr", "en")
DEFAULT_LANG = "fr"
LOCALE_DIR = Path(__file__).parent / "locale"
PARIS = ZoneInfo("Europe/Paris")
# What `pybabel extract` (and tests/test_i18n.py) look for: _("...") and pgettext("kind", "code") in templates,
# gettext(lang, "...") in Python. label(lang, kind, code) takes codes known only at run time: not extracted.
EXTRACT_KEYWORDS = {"_": None, "gettext": (2,), "pgettext": ((1, "c"), 2)}


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


def lang_of(request: Request) -> str:
    asked = request.query_params.get("lang")  # ?lang=en: a link or a test picks the language
    if asked in LANGS:
        return asked
    chosen = request.cookies.get("lang")
    if chosen in LANGS:
        return chosen
    accept = request.headers.get("accept-language", "")
    return "en" if accept.lower().startswith("en") else DEFAULT_LANG


# --- templates: _("...") and pgettext("kind", code) in the language of the page being rendered -----------
# The callables read `lang` from the template's context: one shared Environment serves concurrent requests in
# different languages (installing one language's translations on it per request would race).

@pass_context
def _template_gettext(context, msgid: str) -> str:
    return gettext(context.get("lang", DEFAULT_LANG), msgid)


@pass_context
def _template_ngettext(context, singular: str, plural: str, n: int) -> str:
    return TRANSLATIONS.get(context.get("lang", DEFAULT_LANG), TRANSLATIONS[DEFAULT_LANG]).ngettext(singular, plural, n)


@pass_context
def _template_pgettext(context, msgctxt: str, msgid: str) -> str:
    return label(context.get("lang", DEFAULT_LANG), msgctxt, msgid)


@pass_context
def _template_date(context, value: date | datetime, time: bool = True, seconds: bool = True) -> str:
    """A date (and time, in Paris) through Babel in the page's locale. Day first in both languages
    (06/12/2026 23:40:00): the agents read and type dates that way, and the pages' tests rely on it."""
    lang = context.get("lang", DEFAULT_LANG)
    if isinstance(value, datetime):
        if not time:
            return format_date(value.astimezone(PARIS).date(), "dd/MM/yyyy", locale=lang)
        return format_datetime(value, "dd/MM/yyyy HH:mm:ss" if seconds else "dd/MM/yyyy HH:mm", tzinfo=PARIS,
                               locale=lang)
    return format_date(value, "dd/MM/yyyy", locale=lang)


def install(env: Environment) -> None:
    env.add_extension("jinja2.ext.i18n")
    env.install_gettext_callables(_template_gettext, _template_ngettext, newstyle=False,  # type: ignore[attr-defined]
                                  pgettext=_template_pgettext)
    env.filters["local_date"] = _template_date
