"""Context cuts keep the answer, end at sentence boundaries, fit the budget, shrink with it."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from jdspec.data.context_cut import cut_context, find_answer, split_sentences, word_count

# Sentences of 3, 4, 2, 5 and 2 words: 16 in all.
FIVE = "Alpha one two. Bravo three four five. Charlie six. Delta seven eight nine ten. Echo eleven."


def _sentences(text: str) -> list[str]:
    return [text[start:end] for start, end in split_sentences(text)]


def _cut(passage: str, answer: str, fraction: float) -> str:
    start = passage.index(answer)
    return cut_context(passage, start, start + len(answer), fraction)


def test_split_sentences_on_marks_quotes_and_brackets() -> None:
    text = '  First one.  "Second!" she said.\n(Third?) 4 is a digit. last stays joined. End  '
    assert _sentences(text) == [
        "First one.",
        '"Second!" she said.',
        "(Third?)",
        "4 is a digit. last stays joined.",
        "End",
    ]


def test_abbreviations_and_initials_do_not_split() -> None:
    text = (
        "Mr. Smith and Dr. J. R. Jones met in the U.S. Army base, e.g. The Fort, i.e. Camp Xray. "
        "Mrs. Brown vs. St. Louis, Jr. No. 5 etc. Then it ended."
    )
    assert _sentences(text) == [
        "Mr. Smith and Dr. J. R. Jones met in the U.S. Army base, e.g. The Fort, i.e. Camp Xray.",
        "Mrs. Brown vs. St. Louis, Jr. No. 5 etc. Then it ended.",
    ]


def test_cut_alternates_sides_before_first() -> None:
    # Answer sentence "Charlie six." (2 words). fraction 0.5 -> budget 8: before (4) and after
    # (5) both fit, a tie goes before -> 6 words; then 6 + 3 > 8 and 6 + 5 > 8: stop.
    assert _cut(FIVE, "Charlie", 0.5) == "Bravo three four five. Charlie six."
    # fraction 0.75 -> budget 12: before -> 6 (before 4, after 0), after -> 11, then 14 and 13
    # both exceed 12.
    assert _cut(FIVE, "Charlie", 0.75) == (
        "Bravo three four five. Charlie six. Delta seven eight nine ten."
    )
    # fraction 0.3 -> budget ceil(4.8) = 5: neither neighbour fits, the answer sentence stays.
    assert _cut(FIVE, "Charlie", 0.3) == "Charlie six."


def test_a_closed_side_lets_the_other_go_on() -> None:
    passage = "Long one with many many many words here. Answer here. Short a. Short b. Short c."
    # 8 + 2 + 2 + 2 + 2 = 16 words, budget 8: the 8-word sentence before never fits.
    assert _cut(passage, "Answer", 0.5) == "Answer here. Short a. Short b. Short c."


def test_answer_across_sentences_keeps_both() -> None:
    start = FIVE.index("six")
    end = FIVE.index("seven") + len("seven")
    assert cut_context(FIVE, start, end, 0.1) == "Charlie six. Delta seven eight nine ten."


def test_whole_passage_and_budget_rounding() -> None:
    assert cut_context(f"  {FIVE}\n", 30, 35, 1.0) == FIVE
    filler = " ".join(["filler"] * 16)
    passage = f"Answer. Two three four five six seven. Eight. Filler {filler}."  # 25 words
    # 0.28 * 25 is 7.000000000000001 in floats; the budget must still be 7 words, not 8.
    assert _cut(passage, "Answer", 0.28) == "Answer. Two three four five six seven."


@pytest.mark.parametrize("fraction", [0.0, -0.5, 1.5, math.nan])
def test_bad_fraction(fraction: float) -> None:
    with pytest.raises(ValueError, match="fraction"):
        cut_context(FIVE, 0, 5, fraction)


@pytest.mark.parametrize(("start", "end"), [(-1, 3), (5, 5), (6, 3), (0, len(FIVE) + 1)])
def test_bad_span(start: int, end: int) -> None:
    with pytest.raises(ValueError, match="span"):
        cut_context(FIVE, start, end, 0.5)


def test_find_answer_prefers_exact_then_earliest() -> None:
    passage = "The paris agreement was signed in Paris, France."
    assert find_answer(passage, ["Paris"]) == (34, 39)  # exact match beats the earlier "paris"
    assert find_answer(passage, ["PARIS"]) == (4, 9)  # no exact match: earliest, any case
    assert find_answer(passage, ["France", " Paris, France "]) == (34, 47)  # earliest, stripped
    assert find_answer(passage, ["Lyon", "", "  "]) is None
    assert find_answer(passage, []) is None


# Words of 5+ letters are never one of the abbreviations, so sentences are known exactly.
_WORD = st.text("abcdefghijklmnopqrstuvwxyz", min_size=5, max_size=8)
_SENTENCE = st.tuples(
    st.lists(_WORD, min_size=1, max_size=12), st.sampled_from([".", "!", "?", '."', ".)"])
).map(lambda parts: " ".join(parts[0]).capitalize() + parts[1])
_PASSAGE = st.tuples(
    st.lists(_SENTENCE, min_size=1, max_size=12), st.sampled_from([" ", "  ", "\n", " \n "])
)


@st.composite
def _cases(draw: st.DrawFn) -> tuple[str, list[str], int, int]:
    sentences, separator = draw(_PASSAGE)
    passage = " " + separator.join(sentences) + separator
    start = draw(st.integers(0, len(passage) - 1))
    end = draw(st.integers(start + 1, len(passage)))
    return passage, sentences, start, end


@settings(max_examples=300, deadline=None)
@given(_cases(), st.floats(0.01, 1.0))
def test_cut_properties(case: tuple[str, list[str], int, int], fraction: float) -> None:
    passage, sentences, start, end = case
    answer = passage[start:end].strip()
    assume(answer)
    assert _sentences(passage) == sentences
    spans = split_sentences(passage)
    cut = cut_context(passage, start, end, fraction)
    # The cut is some run of whole sentences, and that run covers the answer's text.
    answer_start = start + passage[start:end].index(answer)
    runs = [
        (first, last)
        for first, (run_start, _) in enumerate(spans)
        for last, (_, run_end) in enumerate(spans[first:], first)
        if passage[run_start:run_end] == cut
    ]
    assert any(
        spans[first][0] <= answer_start and answer_start + len(answer) <= spans[last][1]
        for first, last in runs
    )
    budget = math.ceil(round(fraction * word_count(passage), 9))
    touched = [
        i for i, (s, e) in enumerate(spans) if s < answer_start + len(answer) and answer_start < e
    ]
    answer_only = passage[spans[touched[0]][0] : spans[touched[-1]][1]]
    assert word_count(cut) <= budget or cut == answer_only
    assert answer_only in cut


@settings(max_examples=200, deadline=None)
@given(_cases(), st.lists(st.floats(0.01, 1.0), min_size=2, max_size=6))
def test_smaller_fraction_never_gives_more_words(
    case: tuple[str, list[str], int, int], fractions: list[float]
) -> None:
    passage, _, start, end = case
    assume(passage[start:end].strip())
    counts = [word_count(cut_context(passage, start, end, f)) for f in sorted(fractions)]
    assert counts == sorted(counts)
    assert cut_context(passage, start, end, 1.0) == passage.strip()
