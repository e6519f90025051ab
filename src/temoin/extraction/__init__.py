"""Extraction packages: a recording's original bytes, manifest, signed sums and chain-of-custody PDF, handed to a
named recipient (package), checked by anyone (package_verify), cut to a requested range (trim)."""
