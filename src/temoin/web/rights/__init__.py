"""Citizens' rights on the web: the API (api.router) and the pages (pages.pages)."""

from temoin.web.rights.api import router
from temoin.web.rights.pages import pages

__all__ = ["pages", "router"]
