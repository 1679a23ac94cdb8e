"""Magnitude pruning: zero the smallest |W|, per matrix, over all matrices, or N of every M."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, model_validator

from jdspec.compress.core import (
    NM,
    CompressionRecord,
    check_nm_groups,
    find_targets,
    measure,
    register_compressor,
)
from jdspec.compress.fields import (
    Ignore,
    MaskStructure,
    Sparsity,
    Targets,
    check_one_structure,
    pruning_family,
    pruning_strength,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

VERSION = 1


class MagnitudeParams(BaseModel, extra="forbid", frozen=True):
    method: Literal["magnitude"] = "magnitude"
    sparsity: Sparsity = None
    mask_structure: MaskStructure = None
    scope: Literal["layer", "global"] = Field(
        "layer",
        description="layer: one threshold per weight matrix (the paper's LLM setting); "
        "global: one threshold over all target matrices (the paper's RoBERTa setting).",
    )
    targets: Targets = ("Linear",)
    ignore: Ignore = ()

    @model_validator(mode="after")
    def _one_structure(self) -> MagnitudeParams:
        check_one_structure(self.sparsity, self.mask_structure)
        if self.mask_structure is not None and self.scope == "global":
            raise ValueError("mask_structure N:M is chosen per group; scope must be 'layer'")
        return self

    def strength(self) -> float:
        return pruning_strength(self.sparsity, self.mask_structure)

    def strength_name(self) -> str:
        return "sparsity"

    def family(self) -> str:
        family = pruning_family("magnitude", self.mask_structure)
        return family if self.scope == "layer" else "magnitude global"


_UNSTRUCTURED_TIES = "ties in |W| broken by lower flat index first (matrix order, then row-major)"
_NM_TIES = "ties in |W| within a group of M keep the lower input index"


@register_compressor(
    "magnitude",
    MagnitudeParams,
    VERSION,
    ("sparsity", "mask_structure"),
    supports_transfer=True,  # the transfer modes hold its masks (jdspec/finetune/transfer.py)
)
def compress(model: nn.Module, params: MagnitudeParams, calibration: None) -> CompressionRecord:
    """Zero the smallest-magnitude weights of every target Linear; ties go to the lower index."""
    import torch

    targets = find_targets(model, params.targets, params.ignore)
    with torch.no_grad():
        # one mask at a time: a whole model's masks at once would cost a byte per weight
        for name, mask in _masks(targets, params):
            targets[name].weight.masked_fill_(mask, 0)
    return measure("magnitude", targets, notes=tie_breaking(params))


def pruning_masks(
    targets: dict[str, nn.Linear], params: MagnitudeParams
) -> dict[str, torch.Tensor]:
    """Per target, a bool mask of the weights `compress` would zero (True = pruned).

    Transfer modes (sparse, dense_frozen) need the mask itself, not only the pruned weights.
    """
    return dict(_masks(targets, params))


def tie_breaking(params: MagnitudeParams) -> str:
    """How ties in |W| are broken, for a record's notes."""
    return _NM_TIES if params.mask_structure is not None else _UNSTRUCTURED_TIES


def _masks(
    targets: dict[str, nn.Linear], params: MagnitudeParams
) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield each target's mask in order; every score is read before its matrix is changed."""
    weights = [linear.weight for linear in targets.values()]
    if params.mask_structure is not None:
        check_nm_groups(targets, params.mask_structure)
        for name, weight in zip(targets, weights, strict=True):
            yield name, _nm_mask(weight, params.mask_structure)
        return
    assert params.sparsity is not None
    if params.scope == "global":
        masks = _smallest_masks(weights, _count_to_prune(params.sparsity, weights))
        yield from zip(targets, masks, strict=True)
        return
    for name, weight in zip(targets, weights, strict=True):
        (mask,) = _smallest_masks([weight], _count_to_prune(params.sparsity, [weight]))
        yield name, mask


def _count_to_prune(sparsity: float, weights: list[torch.Tensor]) -> int:
    """Round half up sparsity * numel, so the achieved sparsity is within 1/numel."""
    return math.floor(sparsity * sum(weight.numel() for weight in weights) + 0.5)


def _score_bits(weight: torch.Tensor) -> torch.Tensor:
    """|W| in float32 viewed as int32: non-negative floats order the same as their bit patterns."""
    import torch

    return weight.detach().float().abs().view(torch.int32)


def _count_at_most(weights: list[torch.Tensor], bits: int) -> int:
    return sum(int((_score_bits(weight) <= bits).sum()) for weight in weights)


def _kth_smallest_bits(weights: list[torch.Tensor], rank: int) -> int:
    """The bit pattern of the rank-th smallest |w| over all `weights` (rank >= 1), by bisection.

    Counting per matrix each pass (about 32 passes) avoids concatenating a whole model's scores.
    """
    low = -1  # count(<= low) < rank
    high = max(int(_score_bits(weight).max()) for weight in weights)  # count(<= high) >= rank
    while high - low > 1:
        middle = (low + high) // 2
        if _count_at_most(weights, middle) >= rank:
            high = middle
        else:
            low = middle
    return high


def _smallest_masks(weights: list[torch.Tensor], count: int) -> Iterator[torch.Tensor]:
    """Masks of exactly the `count` smallest |w| over `weights`; ties take the earlier index.

    The threshold is found before the first mask is yielded, so a caller may zero each matrix
    as its mask arrives.
    """
    import torch

    threshold = _kth_smallest_bits(weights, count) if count else -1
    remaining = count - sum(int((_score_bits(weight) < threshold).sum()) for weight in weights)
    for weight in weights:
        bits = _score_bits(weight)
        mask = bits < threshold
        if remaining > 0:
            tied = torch.nonzero(bits.flatten() == threshold).flatten()[:remaining]
            mask.view(-1)[tied] = True
            remaining -= tied.numel()
        yield mask
    assert remaining == 0


def _nm_mask(weight: torch.Tensor, structure: NM) -> torch.Tensor:
    """Keep the N largest |w| of every M consecutive inputs; a stable sort keeps the earlier tie."""
    import torch

    rows, columns = weight.shape
    groups = columns // structure.group
    scores = weight.detach().float().abs().reshape(rows, groups, structure.group)
    order = torch.argsort(scores, dim=-1, descending=True, stable=True)
    mask = torch.zeros_like(scores, dtype=torch.bool)
    mask.scatter_(-1, order[..., structure.kept :], True)
    return mask.reshape(rows, columns)
