"""Open-QA scores of a generated answer against its accepted aliases, after SQuAD v1.1.

All three scores compare texts after the official SQuAD v1.1 normalization, so a model is not
penalised for case, punctuation, articles or spacing. Each is the best score over the aliases.
One rule differs from the official script: an empty prediction is never correct, even against an
alias that normalizes to "" (such aliases, e.g. "The", are ignored), so a model that stops at
once cannot score.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

QA_METRICS = ("exact_match", "f1", "contains_answer")

_PUNCTUATION = frozenset(string.punctuation)  # ASCII only, as in the official script
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Lowercase, drop ASCII punctuation, drop the articles a/an/the, collapse whitespace."""
    text = "".join(character for character in text.lower() if character not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, aliases: Sequence[str]) -> float:
    """1.0 when the normalized prediction equals some normalized alias, else 0.0."""
    predicted, golds = _normalized(prediction, aliases)
    return float(bool(predicted) and predicted in golds)


def token_f1(prediction: str, aliases: Sequence[str]) -> float:
    """Best SQuAD token F1 over the aliases: harmonic mean of token precision and recall."""
    predicted, golds = _normalized(prediction, aliases)
    if not predicted:
        return 0.0
    return max((_f1(predicted.split(), gold.split()) for gold in golds), default=0.0)


def contains_answer(prediction: str, aliases: Sequence[str]) -> float:
    """1.0 when some alias's tokens occur contiguously in the prediction's tokens, else 0.0.

    The lenient score for chatty models ("It was in 1923."); token-level so that the alias "23"
    is not found inside "1923".
    """
    predicted, golds = _normalized(prediction, aliases)
    tokens = predicted.split()
    return float(any(_contains(tokens, gold.split()) for gold in golds))


def qa_scores(prediction: str, aliases: Sequence[str]) -> dict[str, float]:
    """All three scores under the names in QA_METRICS."""
    return {
        "exact_match": exact_match(prediction, aliases),
        "f1": token_f1(prediction, aliases),
        "contains_answer": contains_answer(prediction, aliases),
    }


def _normalized(prediction: str, aliases: Sequence[str]) -> tuple[str, list[str]]:
    """The normalized prediction and the aliases that keep some text after normalization."""
    golds = [normalize_answer(alias) for alias in aliases]
    return normalize_answer(prediction), [gold for gold in golds if gold]


def _f1(predicted: list[str], gold: list[str]) -> float:
    common = sum((Counter(predicted) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision = common / len(predicted)
    recall = common / len(gold)
    return 2 * precision * recall / (precision + recall)


def _contains(tokens: list[str], needle: list[str]) -> bool:
    width = len(needle)
    return any(tokens[start : start + width] == needle for start in range(len(tokens) - width + 1))
