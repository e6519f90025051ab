"""The web layer: FastAPI routers and pages that assemble the domain packages. Kept thin."""
