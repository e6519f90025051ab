"""Témoin: open-source platform for police body-worn cameras."""

__version__ = "0.1.0"
