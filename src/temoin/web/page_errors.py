"""Errors met by a browser on a page: a page in its language saying what went wrong and what to do, not the API's
JSON (FastAPI's validation list, a problem+json, "Not Found"). The API, the cameras' routes and the scripts' calls
keep their JSON: only a request for a page (its path outside them, HTML accepted) is answered with a page."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import WebSocketRequestValidationError
from fastapi.responses import Response

from temoin.web.deps import CSRF_REFUSED
from temoin.web.i18n import gettext, label, lang_of
from temoin.web.templating import page

# Paths whose answers are read by programs (the API, the Axis system, keys, assets, the scripts' catalogue).
NOT_PAGES = ("/api/", "/v1/", "/auth/", "/.well-known/", "/static/", "/i18n/", "/openapi.json", "/docs", "/redoc")

# What to do, by status. The reason itself (a permission's code, a field's name) stays in the API's answer and the
# server's log: a page names no code.
ADVICE = {
    400: "This address or form is not valid: go back and try again.",
    403: "Your role does not give access to this page. Ask your chief if you need it.",
    404: "This page does not exist, or no longer does. Check the address or go back.",
    405: "This action is not possible on this page. Go back and use its buttons.",
    409: "This action conflicts with the current state (someone may have acted first). Reload the page and try again.",
    413: "What was sent is too large.",
    422: "This address is not valid: check the link, or go back and try again.",
    429: "Too many attempts: wait a moment, then try again.",
    503: "The platform is busy: try again in a moment.",
    507: "The vault's storage is full: tell the technical administrator.",
}
OTHER = "Something went wrong: go back and try again. If it happens again, tell the technical administrator."
FORM_EXPIRED = "This form has expired: reload the page and try again."
KEPT_HEADERS = ("retry-after", "allow")

Handler = Callable[[Request, Exception], Awaitable[Response] | Response]


def wants_page(request: Request) -> bool:
    return not request.url.path.startswith(NOT_PAGES) and "text/html" in request.headers.get("accept", "")


def error_page(request: Request, status: int, exc: Exception, headers: dict[str, str]) -> Response:
    lang = lang_of(request)
    advice = FORM_EXPIRED if getattr(exc, "detail", None) == CSRF_REFUSED else ADVICE.get(status, OTHER)
    title = label(lang, "problem", str(status))
    response = page(
        request,
        "error.html",
        status=status,
        title=title if title != str(status) else gettext(lang, "Error"),
        error=gettext(lang, advice),
        back="/",
    )
    response.headers.update(headers)
    return response


def _as_page(handler: Handler) -> Handler:
    async def handle(request: Request, exc: Exception) -> Response:
        answer = handler(request, exc)
        response = answer if isinstance(answer, Response) else await answer
        if response.status_code < 400 or not wants_page(request):
            return response
        kept = {k: v for k, v in response.headers.items() if k in KEPT_HEADERS}
        return error_page(request, response.status_code, exc, kept)

    return handle


def install(app: FastAPI) -> None:
    """Wrap every error handler of `app` (install it last): FastAPI's own, the domain's problem+json, the database's.
    A page's redirects (sign in first, choose a password) are not errors and pass as they are."""
    for kind, handler in list(app.exception_handlers.items()):
        if isinstance(kind, type) and kind is not WebSocketRequestValidationError:
            app.exception_handlers[kind] = _as_page(handler)
