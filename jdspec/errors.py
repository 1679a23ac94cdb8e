"""User-facing errors: each becomes one paragraph on the terminal and exit code 2."""

from __future__ import annotations


class SpecError(Exception):
    """Bad user input (spec, flag, store path), naming the file, the field and what was expected."""


class StoreBusy(Exception):
    """Another `jd run` holds the store; carries the holder's description."""
