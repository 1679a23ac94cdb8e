"""Setting 3's passages: x% of a passage's words around the answer, cut at sentence boundaries.

The sentences holding the answer are always kept, so every level of the spectrum stays
answerable; whole neighbouring sentences are added one at a time, alternating sides, while the
cut stays within the word budget. Words, not model tokens, are counted so that every model of a
study sees the same cut of the same passage.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

# A sentence ends at . ! or ?, maybe followed by closing quotes or brackets, then whitespace.
_END = re.compile(r"[.!?][\"')\]”’]*(?=\s)")
_OPENERS = "\"'([“‘"  # a sentence may also start with an opening quote or bracket
_ABBREVIATIONS = frozenset(
    ["mr.", "mrs.", "dr.", "st.", "u.s.", "e.g.", "i.e.", "etc.", "vs.", "jr.", "no."]
)
_INITIAL = re.compile(r"[A-Z]\.")  # "J. Smith": a single capital initial ends no sentence


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans [start, end) of the sentences of `text`, in order, spaces excluded.

    A sentence ends after . ! or ? (and any closing quotes/brackets) when whitespace and then an
    uppercase letter, a digit or an opening quote/bracket follow, unless the period ends a common
    abbreviation ("Mr.", "U.S.", "e.g.") or a single initial ("J."). Deliberately simple: a real
    sentence ending in an abbreviation stays joined to the next, which only makes a cut coarser.
    """
    spans: list[tuple[int, int]] = []
    start = _skip_spaces(text, 0)
    for match in _END.finditer(text):
        following = _skip_spaces(text, match.end())
        if following < len(text) and _ends_sentence(text, match.start(), following):
            spans.append((start, match.end()))
            start = following
    end = len(text.rstrip())
    if start < end:
        spans.append((start, end))
    return spans


def word_count(text: str) -> int:
    """Whitespace-separated words: the unit of the budget, the same under every tokenizer."""
    return len(text.split())


def cut_context(passage: str, answer_start: int, answer_end: int, fraction: float) -> str:
    """The passage cut to about `fraction` of its words around the answer span [start, end).

    Keeps the sentences the answer touches, then adds whole sentences while the total stays
    within ceil(fraction * words): each step extends the side (before/after the answer) with
    fewer words added so far, before on a tie (earlier sentences introduce what later ones
    refer to); a side whose next sentence would overflow is closed and the other goes on.
    Returns the passage from the first kept sentence's start to the last one's end.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if not 0 <= answer_start < answer_end <= len(passage):
        raise ValueError(
            f"answer span [{answer_start}, {answer_end}) is empty or outside a passage of "
            f"{len(passage)} characters"
        )
    sentences = split_sentences(passage)
    first, last = _answer_sentences(passage, sentences, answer_start, answer_end)
    words = [word_count(passage[start:end]) for start, end in sentences]
    # Rounded first so that 0.3 * 10 words gives a budget of 3, not 4 from float error.
    budget = math.ceil(round(fraction * sum(words), 9))
    total = sum(words[first : last + 1])
    added_before = added_after = 0
    while True:
        before_fits = first > 0 and total + words[first - 1] <= budget
        after_fits = last + 1 < len(sentences) and total + words[last + 1] <= budget
        if before_fits and (not after_fits or added_before <= added_after):
            first -= 1
            added_before += words[first]
            total += words[first]
        elif after_fits:
            last += 1
            added_after += words[last]
            total += words[last]
        else:
            return passage[sentences[first][0] : sentences[last][1]]


def find_answer(passage: str, aliases: Sequence[str]) -> tuple[int, int] | None:
    """Span of the earliest occurrence of any alias in the passage, or None when none occurs.

    Exact (case-sensitive) matches are preferred; only when no alias occurs exactly is case
    ignored. Aliases are stripped; at equal starts the longest alias wins.
    """
    needles = {alias.strip() for alias in aliases if alias.strip()}
    for flags in (0, re.IGNORECASE):
        found = [
            match.span()
            for needle in needles
            if (match := re.search(re.escape(needle), passage, flags)) is not None
        ]
        if found:
            return min(found, key=lambda span: (span[0], -span[1]))
    return None


def _skip_spaces(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position


def _ends_sentence(text: str, mark: int, following: int) -> bool:
    """Whether the end mark at `mark` closes a sentence, given the next sentence's first char."""
    next_character = text[following]
    if not (next_character.isupper() or next_character.isdigit() or next_character in _OPENERS):
        return False
    if text[mark] != ".":
        return True
    word_start = mark
    while word_start > 0 and not text[word_start - 1].isspace():
        word_start -= 1
    word = text[word_start : mark + 1].lstrip(_OPENERS)
    return word.lower() not in _ABBREVIATIONS and not _INITIAL.fullmatch(word)


def _answer_sentences(
    passage: str, sentences: list[tuple[int, int]], answer_start: int, answer_end: int
) -> tuple[int, int]:
    """Indices of the first and last sentence that the answer's non-space text overlaps."""
    text_start = _skip_spaces(passage, answer_start)
    text_end = len(passage[:answer_end].rstrip())
    touched = [
        index
        for index, (start, end) in enumerate(sentences)
        if start < text_end and text_start < end
    ]
    if not touched:
        raise ValueError(f"answer span [{answer_start}, {answer_end}) holds no passage text")
    return touched[0], touched[-1]
