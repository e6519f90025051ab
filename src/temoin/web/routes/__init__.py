"""API routers, one per domain surface."""
