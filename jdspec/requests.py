"""What tasks ask of a model, as plain data: tasks build requests, evaluate.py answers them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class LoglikelihoodRequest:
    """One context and the continuations scored after it (a question and its answer options)."""

    context: str
    continuations: tuple[str, ...]


def prompt_hash(text: str) -> str:
    """First 16 hex digits of the text's SHA-256: a short, stable key for a stored prompt."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
