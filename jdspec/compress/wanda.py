"""Wanda (Sun et al. 2023): prune by |W| times the input activation norm, per output row."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, model_validator

from jdspec.compress.calibration import CalibrationParams, compress_layerwise
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


class WandaParams(BaseModel, extra="forbid", frozen=True):
    method: Literal["wanda"] = "wanda"
    sparsity: Sparsity = None
    mask_structure: MaskStructure = None
    targets: Targets = ("Linear",)
    ignore: Ignore = ()
    calibration: CalibrationParams = Field(
        CalibrationParams(), description="The text whose activations weigh the weights."
    )

    @model_validator(mode="after")
    def _one_structure(self) -> WandaParams:
        check_one_structure(self.sparsity, self.mask_structure)
        return self

    def strength(self) -> float:
        return pruning_strength(self.sparsity, self.mask_structure)

    def strength_name(self) -> str:
        return "sparsity"

    def family(self) -> str:
        return pruning_family("wanda", self.mask_structure)


_UNSTRUCTURED_TIES = "per output row; ties in |W|*||X|| prune the lower input index first"
_NM_TIES = "ties in |W|*||X|| within a group of M keep the lower input index"


@register_compressor(
    "wanda", WandaParams, VERSION, ("sparsity", "mask_structure"), needs_calibration=True
)
def compress(model: nn.Module, params: WandaParams, calibration: torch.Tensor) -> CompressionRecord:
    """Zero the lowest |W_ij| * ||X_j|| of every output row (or of every group of M inputs)."""
    targets = find_targets(model, params.targets, params.ignore)
    if params.mask_structure is not None:
        check_nm_groups(targets, params.mask_structure)

    def prune(name: str, linear: nn.Linear, column_norms: torch.Tensor) -> None:
        prune_matrix(linear.weight, column_norms, params.sparsity, params.mask_structure)

    compress_layerwise(model, calibration, targets, "column_norms", prune)
    notes = _NM_TIES if params.mask_structure is not None else _UNSTRUCTURED_TIES
    return measure("wanda", targets, notes=notes)


def prune_matrix(
    weight: torch.Tensor,
    column_norms: torch.Tensor,
    sparsity: float | None,
    structure: NM | None,
) -> None:
    """Zero, in place, the weights of lowest score S_ij = |W_ij| * ||X_j||_2 (Wanda's metric).

    `column_norms` holds sum_t x_tj^2 over the calibration tokens, so ||X_j||_2 is its square
    root. Unstructured: the k = round(sparsity * in) lowest scores of each output row, a
    stable sort pruning the lower index of a tie first. N:M: the N highest of every M
    consecutive inputs kept, a tie keeping the lower index. Scores are float32.
    """
    import torch

    W = weight.detach()  # (out, in), shares storage: zeros land in the weight
    rows, columns = W.shape
    S = W.float().abs() * column_norms.float().sqrt()  # (out, in)
    if structure is not None:
        groups = S.reshape(rows, columns // structure.group, structure.group)
        order = torch.argsort(groups, dim=-1, descending=True, stable=True)
        mask = torch.zeros_like(groups, dtype=torch.bool)
        mask.scatter_(-1, order[..., structure.kept :], True)
        W.masked_fill_(mask.reshape(rows, columns), 0)
        return
    assert sparsity is not None
    count = math.floor(sparsity * columns + 0.5)
    order = torch.argsort(S, dim=-1, stable=True)  # (out, in), ascending
    mask = torch.zeros_like(S, dtype=torch.bool)
    mask.scatter_(-1, order[:, :count], True)
    W.masked_fill_(mask, 0)
