"""The pages' templates: Jinja with gettext (web.i18n), the Paris time zone and the role's permissions."""

from __future__ import annotations

from pathlib import Path

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from temoin.law.access import Permission, allows
from temoin.law.legal_time import PARIS
from temoin.web import i18n
from temoin.web.deps import Principal
from temoin.web.i18n import lang_of

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
templates.env.globals["paris"] = PARIS
i18n.install(templates.env)  # _("..."), pgettext("kind", code) and |local_date in the page's language
# The menu shows what the role may open, from the same table the routes enforce.
templates.env.globals["can"] = lambda who, permission: allows(who.role, Permission(permission))


def page(request: Request, name: str, status: int = 200, who: Principal | None = None, **context) -> HTMLResponse:
    lang = lang_of(request)
    return templates.TemplateResponse(request, name, {"lang": lang, "who": who, **context}, status_code=status)
