"""The offline multiple-choice sets load with the sizes their packages document."""

from __future__ import annotations

import pytest

from jdspec.data.mcq import load_mcq
from jdspec.errors import SpecError


def test_mmlu_offline_counts() -> None:
    data = load_mcq("mmlu", "offline", "0.9.0")
    assert len(data.items) == 14042
    assert sum(len(pool) for pool in data.demonstrations.values()) == 285
    assert all(len(item.choices) == 4 and 0 <= item.answer < 4 for item in data.items)


@pytest.mark.parametrize(
    ("name", "count"),
    [("arc_easy", 570), ("sciq", 1000), ("openbookqa", 500), ("arc_challenge", 299)],
)
def test_demonstrations_are_not_evaluated(name: str, count: int) -> None:
    data = load_mcq(name, "offline", "0.9.0")
    demos = {item.id for pool in data.demonstrations.values() for item in pool}
    assert len(demos) == 5 and len(data.items) == count - 5
    assert not demos & {item.id for item in data.items}
    assert all(item.choices[item.answer] for item in data.items)


def test_sciq_gold_is_not_always_last() -> None:
    answers = {item.answer for item in load_mcq("sciq", "offline", "0.9.0").items}
    assert answers == {0, 1, 2, 3}


def test_pinned_offline_version_must_match() -> None:
    with pytest.raises(SpecError, match="pins 0.1.0"):
        load_mcq("arc_easy", "offline", "0.1.0")
