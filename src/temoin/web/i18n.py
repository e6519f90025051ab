"""The web pages speak French first, English too. The choice is ?lang=, else a cookie, else Accept-Language.

The texts are gettext catalogues, locale/<lang>/LC_MESSAGES/messages.po, whose source strings are English.
Labels of codes (a request's status, a recording's trigger...) use msgctxt = the code's kind, msgid = the code,
so a template shows pgettext("status", r.status) and never the raw code. The .po files are read at import
(no compile step): a fresh checkout runs as it is. To add a text, see docs/i18n.md.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import cache

import orjson
from fastapi import APIRouter, HTTPException, Request, Response
from jinja2 import Environment, pass_context
from markupsafe import Markup

# The catalogue and the formats live in temoin.texts, below the PDF makers; the pages use them from here.
from temoin.texts import (
    DEFAULT_LANG,
    LANGS,
    LOCALE_DIR,
    PARIS,
    TRANSLATIONS,
    for_scripts,
    gettext,
    label,
    number,
    when,
)

__all__ = [
    "DEFAULT_LANG",
    "EXTRACT_KEYWORDS",
    "LANGS",
    "LOCALE_DIR",
    "PARIS",
    "TRANSLATIONS",
    "gettext",
    "install",
    "label",
    "lang_of",
    "number",
    "when",
]

# What `pybabel extract` (and tests/test_i18n.py) look for: _("...") and pgettext("kind", "code") in templates,
# gettext(lang, "...") in Python. label(lang, kind, code) takes codes known only at run time: not extracted.
EXTRACT_KEYWORDS = {"_": None, "gettext": (2,), "pgettext": ((1, "c"), 2)}


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
    """A date (and time, in Paris) through Babel in the page's locale (temoin.texts.when)."""
    return when(context.get("lang", DEFAULT_LANG), value, time=time, seconds=seconds)


@pass_context
def _template_number(context, value: float, digits: int = 2) -> str:
    return number(context.get("lang", DEFAULT_LANG), value, digits)


# --- the scripts' texts: the same catalogue, as JSON ---------------------------------------------------------
# csu.js, review.js and the live viewer read it from an inline <script type="application/json"> (data, not code:
# the CSP's script-src 'self' allows it) or from /i18n/<lang>.json. Built once per process from the .po files.


@cache
def scripts_json(lang: str) -> str:
    # Inside a <script> element "</" must not close it.
    return orjson.dumps(for_scripts(lang)).decode().replace("</", "<\\/")


@pass_context
def _template_scripts_catalogue(context) -> Markup:
    lang = context.get("lang", DEFAULT_LANG)
    # JSON made here from the catalogue, "</" escaped: safe inside the element.
    return Markup('<script id="temoin-i18n" type="application/json">{}</script>').format(Markup(scripts_json(lang)))  # noqa: S704 - our own JSON, "</" escaped


router = APIRouter(tags=["pages"])


@router.get("/i18n/{lang}.json", summary="The texts of the pages' scripts in one language (the catalogue as JSON)")
def scripts_catalogue(lang: str) -> Response:
    if lang not in LANGS:
        raise HTTPException(404, f"no texts in {lang!r}: ask for one of {', '.join(LANGS)}")
    return Response(
        scripts_json(lang), media_type="application/json", headers={"Cache-Control": "public, max-age=3600"}
    )


def install(env: Environment) -> None:
    env.add_extension("jinja2.ext.i18n")
    env.install_gettext_callables(  # type: ignore[attr-defined]  # added at run time by the i18n extension
        _template_gettext,
        _template_ngettext,
        newstyle=False,
        pgettext=_template_pgettext,
    )
    env.filters["local_date"] = _template_date
    env.filters["local_number"] = _template_number
    env.globals["scripts_catalogue"] = _template_scripts_catalogue
