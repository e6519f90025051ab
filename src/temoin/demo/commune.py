"""The demo commune, Port-Témoin. Its map lives in temoin.geo.demo_commune (the camera's simulated GPS and the
basemap, below the demo, read it too)."""

from temoin.geo.demo_commune import commune, streets, territory, walk

__all__ = ["commune", "streets", "territory", "walk"]
