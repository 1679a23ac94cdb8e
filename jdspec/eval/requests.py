"""What tasks ask of a model, as plain data: tasks build requests, evaluate.py answers them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

# In every cell key: bump when evaluate.py or generate.py change how requests are batched or
# computed, since scores then move (by ~1e-5 from batching alone) and stored cells must rerun.
# 2: shared continuation prefixes, token-slot passes split by dynamic programming.
ENGINE_VERSION = 2


@dataclass(frozen=True)
class LoglikelihoodRequest:
    """One context and the continuations scored after it (a question and its answer options)."""

    context: str
    continuations: tuple[str, ...]


def prompt_hash(text: str) -> str:
    """First 16 hex digits of the text's SHA-256: a short, stable key for a stored prompt."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class GenerationRequest:
    """A prompt answered by greedy decoding, cut before the first stop sequence."""

    context: str
    stop: tuple[str, ...] = ("\n",)
    max_new_tokens: int = 32


@dataclass(frozen=True)
class Generation:
    """What greedy decoding answered: the text before any stop sequence, and how sure it was."""

    text: str
    token_count: int  # generated tokens kept (those before the one that completed a stop)
    logprob: float  # sum of those tokens' log-probabilities
