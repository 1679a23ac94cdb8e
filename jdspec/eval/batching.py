"""How many sequences go into one forward pass: the spec's number, or "auto" found by probing.

"auto" tries a forward pass on the cell's longest sequence at 64 rows and halves on
out-of-memory, as lm-evaluation-harness's auto batch size does. The probe computes logits at
every position, more than jd's passes keep, so the size it finds leaves room. On a CPU there
is no out-of-memory error to catch (memory swaps), so "auto" is 64 there without a probe. The
size used is stored with each cell, because scores move slightly with the batch composition.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

AUTO_START = 64
BatchSize = int | Literal["auto"]


def resolve_batch_size(model: nn.Module, batch_size: BatchSize, longest: int) -> int:
    """The spec's batch size, or for "auto" the largest power of two up to 64 that fits."""
    if batch_size != "auto":
        return batch_size
    if not _runs_out_of_memory(model):
        return AUTO_START
    size = AUTO_START
    while True:
        try:
            _probe(model, size, longest)
            return size
        except torch.OutOfMemoryError:
            if size == 1:
                raise
            size //= 2
        finally:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()


def _runs_out_of_memory(model: nn.Module) -> bool:
    """Whether the model's device raises out-of-memory errors (accelerators do, CPUs swap)."""
    return next(model.parameters()).device.type != "cpu"


def _probe(model: nn.Module, rows: int, length: int) -> None:
    device = next(model.parameters()).device
    input_ids = torch.zeros((rows, max(length, 1)), dtype=torch.long, device=device)
    with torch.inference_mode():
        logits = model(input_ids=input_ids, use_cache=False).logits
        torch.log_softmax(logits.float(), dim=-1)
