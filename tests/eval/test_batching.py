"""The "auto" batch size: the largest power of two up to 64 whose probe fits."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from jdspec.eval import batching
from jdspec.eval.batching import AUTO_START, resolve_batch_size


class RowLimitedModel(nn.Module):
    """Raises out-of-memory above `max_rows` rows, as a GPU would; records every probe."""

    def __init__(self, max_rows: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.max_rows = max_rows
        self.probes: list[tuple[int, int]] = []

    def forward(self, input_ids: torch.Tensor, use_cache: bool) -> object:
        rows, length = input_ids.shape
        self.probes.append((rows, length))
        if rows > self.max_rows:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return type("Output", (), {"logits": torch.zeros(rows, length, 3)})()


@pytest.fixture(autouse=True)
def accelerator(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake model stands for one on a GPU, whose out-of-memory errors can be caught."""
    monkeypatch.setattr(batching, "_runs_out_of_memory", lambda model: True)


def test_a_number_is_used_as_given_without_probing() -> None:
    model = RowLimitedModel(max_rows=1)
    assert resolve_batch_size(model, 12, longest=100) == 12
    assert model.probes == []


@pytest.mark.parametrize(("max_rows", "expected"), [(64, 64), (100, 64), (40, 32), (1, 1)])
def test_auto_halves_until_the_longest_sequence_fits(max_rows: int, expected: int) -> None:
    model = RowLimitedModel(max_rows)
    assert resolve_batch_size(model, "auto", longest=77) == expected
    sizes = [rows for rows, _ in model.probes]
    assert sizes[0] == AUTO_START and sizes[-1] == expected
    assert all(length == 77 for _, length in model.probes)
    assert sizes == [AUTO_START >> step for step in range(len(sizes))]


def test_auto_on_a_cpu_is_the_start_size_without_a_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()
    model = RowLimitedModel(max_rows=1)
    assert resolve_batch_size(model, "auto", longest=100) == AUTO_START
    assert model.probes == []


def test_auto_gives_up_when_one_row_does_not_fit() -> None:
    with pytest.raises(torch.OutOfMemoryError):
        resolve_batch_size(RowLimitedModel(max_rows=0), "auto", longest=5)
