"""Calibration corpora: the offline BoolQ passages load, deduplicated; hub-only sets say so."""

from __future__ import annotations

import pytest

from jdspec.data.sources import load_offline_rows
from jdspec.data.text import TEXT_DATASETS, calibration_texts, has_offline_copy
from jdspec.errors import SpecError


def test_registered_corpora() -> None:
    assert TEXT_DATASETS.names() == ["boolq_passages", "c4", "wikitext2"]
    assert has_offline_copy("boolq_passages")
    assert not has_offline_copy("c4") and not has_offline_copy("wikitext2")


def test_boolq_passages_are_distinct_in_stored_order() -> None:
    passages = [row["passage"] for row in load_offline_rows("boolq/none/validation")]
    texts = calibration_texts("boolq_passages", "offline", "0.9.0")
    assert len(passages) == 3270 and len(texts) == 2938
    assert texts == list(dict.fromkeys(passages))
    assert sum(len(text) for text in texts) > 1_500_000


def test_callers_get_their_own_list() -> None:
    texts = calibration_texts("boolq_passages", "offline", "0.9.0")
    first = texts[0]
    texts.reverse()
    assert calibration_texts("boolq_passages", "offline", "0.9.0")[0] == first


def test_pinned_offline_version_must_match() -> None:
    with pytest.raises(SpecError, match="pins 0.1.0"):
        calibration_texts("boolq_passages", "offline", "0.1.0")


def test_hub_only_corpus_offline_is_a_clear_error() -> None:
    with pytest.raises(SpecError, match="'c4' has no offline copy; use source: hub"):
        calibration_texts("c4", "offline", "0.9.0")


def test_unknown_corpus_suggests_the_closest() -> None:
    with pytest.raises(SpecError, match="did you mean 'wikitext2'"):
        calibration_texts("wikitext", "offline", "0.9.0")
