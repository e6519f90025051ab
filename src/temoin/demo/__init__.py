"""The demo: a commune, its users and cameras, and recordings sent through the real ingest path."""
