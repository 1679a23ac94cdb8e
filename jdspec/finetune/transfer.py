"""Transfer modes (Section 5): how a magnitude-pruned encoder's masked weights behave while it is
fine-tuned. dense: no pruning. sparse: pruned weights stay 0. dense_frozen: the weights pruning
would remove stay at their pretrained values while the rest train. sparse_to_dense: pruned, then
every weight trains, so pruned weights may grow back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, get_args

import torch

from jdspec.compress.core import find_targets
from jdspec.compress.magnitude import MagnitudeParams, pruning_masks, tie_breaking
from jdspec.compress.none import NoneParams
from jdspec.compress.none import compress as measure_dense
from jdspec.errors import JobError
from jdspec.results import CompressionRecord, MatrixStats
from jdspec.tasks.finetune import TransferMode

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class HeldWeight:
    """One parameter whose masked entries must keep fixed values through training."""

    name: str  # the parameter's full name in the model, e.g. 'bert.encoder.layer.0....weight'
    parameter: torch.Tensor
    mask: torch.Tensor  # bool, the parameter's shape: True = held
    values: torch.Tensor  # 1-D, the held values of parameter[mask] in row-major order


@dataclass(frozen=True)
class HeldWeights:
    """Every held weight of one model; empty for the dense and sparse_to_dense modes.

    The entries refer to the model's own parameters: build them after the model is on its device.
    """

    mode: str
    weights: tuple[HeldWeight, ...] = ()


def prepare_transfer(
    model: nn.Module, mode: str, params: Any
) -> tuple[HeldWeights, CompressionRecord]:
    """Prune `model` in place as `mode` asks and return what must be held, and the masks' record.

    `params` is the cell's compressor params: NoneParams for the dense baseline, MagnitudeParams
    for every other mode (only magnitude pruning defines the mask before any training).
    """
    if mode not in get_args(TransferMode):
        raise ValueError(f"unknown transfer mode {mode!r}; known: {get_args(TransferMode)}")
    if isinstance(params, NoneParams):
        if mode != "dense":
            raise ValueError(f"transfer mode {mode!r} needs a pruned variant, got method 'none'")
        record = measure_dense(model, params, None)
        return HeldWeights(mode), _with_notes(record, "transfer dense")
    if not isinstance(params, MagnitudeParams):
        raise ValueError(
            f"transfer modes need magnitude masks; method {params.method!r} has none "
            "(use method: magnitude, or method: none for the dense baseline)"
        )
    if mode == "dense":
        raise ValueError(
            "transfer mode 'dense' is the unpruned baseline; a pruned variant needs "
            "sparse, dense_frozen or sparse_to_dense"
        )
    targets = find_targets(model, params.targets, params.ignore)
    masks = pruning_masks(targets, params)
    held = []
    with torch.no_grad():
        for name, mask in masks.items():
            weight = targets[name].weight
            if mode == "dense_frozen":
                held.append(HeldWeight(f"{name}.weight", weight, mask, weight[mask].clone()))
                continue
            weight.masked_fill_(mask, 0)
            if mode == "sparse":
                zeros = torch.zeros(int(mask.sum()), dtype=weight.dtype, device=weight.device)
                held.append(HeldWeight(f"{name}.weight", weight, mask, zeros))
    return HeldWeights(mode, tuple(held)), _mask_record(masks, mode, tie_breaking(params))


def _mask_record(masks: dict[str, torch.Tensor], mode: str, ties: str) -> CompressionRecord:
    """Sparsity of the masks, not of the weights: dense_frozen keeps its masked weights non-zero."""
    stats = tuple(MatrixStats(name, mask.numel(), int(mask.sum())) for name, mask in masks.items())
    return CompressionRecord("magnitude", stats, notes=f"transfer {mode}; mask {ties}")


def _with_notes(record: CompressionRecord, notes: str) -> CompressionRecord:
    return CompressionRecord(record.method, record.matrices, record.seconds, notes)


def hold(held: HeldWeights) -> None:
    """Restore every held value bit for bit; call after each optimizer step."""
    with torch.no_grad():
        for weight in held.weights:
            weight.parameter.masked_scatter_(weight.mask, weight.values)


def check_held(held: HeldWeights) -> None:
    """Fail loudly, naming the parameter, if any held weight has drifted from its held value."""
    for weight in held.weights:
        drifted = int((weight.parameter.detach()[weight.mask] != weight.values).sum())
        if drifted:
            raise JobError(f"{weight.name}: {drifted} held weights differ from their values")
