"""SparseGPT (Frantar & Alistarh 2023): prune with OBS corrections of the unpruned weights.

Each Linear is pruned to minimise ||W X^T - W' X^T||^2 on calibration inputs: columns are visited
left to right (obs.sweep_columns); a pruned weight's error is spread over the row's later
columns. The mask is chosen adaptively from the current, already corrected weights by the OBS
saliency w_ij^2 / [H_j^-1]_jj, H_j being H restricted to columns j.. (the columns left when j's
turn comes); with U the upper Cholesky factor of H^-1, [H_j^-1]_jj = U_jj^2:

- unstructured: once per block of block_size columns, over the whole block (every row), as the
  paper's Algorithm 1. The block's quota is count(end) - count(start), count(c) =
  floor(sparsity * rows * c + 1/2), so the matrix ends with exactly
  floor(sparsity * rows * columns + 1/2) zeros while rows may differ. Ties in the saliency go to
  the lower row-major index in the block.
- N:M: once per group of M columns, per row: the M - N lowest saliencies are pruned (ties to the
  lower input index).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, model_validator

from jdspec.compress.calibration import CalibrationParams
from jdspec.compress.core import (
    NM,
    CompressionRecord,
    check_nm_groups,
    find_targets,
    measure,
    register_compressor,
)
from jdspec.compress.fields import (
    DampeningFrac,
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


class SparseGPTParams(BaseModel, extra="forbid", frozen=True):
    method: Literal["sparsegpt"] = "sparsegpt"
    sparsity: Sparsity = None
    mask_structure: MaskStructure = None
    block_size: int = Field(
        128,
        ge=1,
        description="Columns per block: an unstructured mask is chosen per block; later blocks "
        "receive the block's corrections at once.",
    )
    dampening_frac: DampeningFrac = 0.01
    targets: Targets = ("Linear",)
    ignore: Ignore = ()
    calibration: CalibrationParams = Field(
        CalibrationParams(), description="The token sequences the Hessians are collected on."
    )

    @model_validator(mode="after")
    def _one_structure(self) -> SparseGPTParams:
        check_one_structure(self.sparsity, self.mask_structure)
        if self.mask_structure is not None and self.block_size % self.mask_structure.group:
            raise ValueError(
                f"block_size {self.block_size} must be a multiple of M={self.mask_structure.group}"
                ", so no N:M group straddles two blocks"
            )
        return self

    def strength(self) -> float:
        return pruning_strength(self.sparsity, self.mask_structure)

    def strength_name(self) -> str:
        return "sparsity"

    def family(self) -> str:
        return pruning_family("sparsegpt", self.mask_structure)


_UNSTRUCTURED_NOTES = (
    "mask per block of block_size columns over all rows by w^2/[H^-1]_jj, quota "
    "floor(s*rows*end+1/2)-floor(s*rows*start+1/2); ties to the lower row-major index"
)
_NM_NOTES = "mask per row and group of M by w^2/[H^-1]_jj; ties prune the lower input index"


@register_compressor(
    "sparsegpt",
    SparseGPTParams,
    VERSION,
    ("sparsity", "mask_structure"),
    needs_calibration=True,
)
def compress(
    model: nn.Module, params: SparseGPTParams, calibration: torch.Tensor
) -> CompressionRecord:
    """Prune every target Linear with SparseGPT, block by block on calibration activations."""
    import torch

    from jdspec.compress.calibration import compress_layerwise

    targets = find_targets(model, params.targets, params.ignore)
    if params.mask_structure is not None:
        check_nm_groups(targets, params.mask_structure)

    def prune(name: str, linear: nn.Linear, hessian: torch.Tensor) -> None:
        pruned = prune_matrix(
            linear.weight,
            hessian,
            params.sparsity,
            params.mask_structure,
            params.block_size,
            params.dampening_frac,
        )
        linear.weight.copy_(pruned)

    with torch.no_grad():
        compress_layerwise(model, calibration, targets, "hessian", prune)
    notes = _UNSTRUCTURED_NOTES if params.mask_structure is None else _NM_NOTES
    return measure("sparsegpt", targets, notes=notes)


def prune_matrix(
    W: torch.Tensor,
    H: torch.Tensor,
    sparsity: float | None,
    structure: NM | None,
    block_size: int,
    dampening_frac: float,
) -> torch.Tensor:
    """SparseGPT's Algorithm 1 on one weight W (rows, columns) with Hessian H (columns, columns).

    Returns the pruned and corrected weight in H's compute dtype (float32, or float64 for a
    float64 H); dead input columns (H_jj = 0) come back zero.
    """
    import torch

    from jdspec.compress.obs import inverse_hessian_cholesky, sweep_columns

    U, dead = inverse_hessian_cholesky(H, dampening_frac)  # (columns, columns), (columns,)
    W = W.to(dtype=U.dtype, copy=True)  # (rows, columns)
    W[:, dead] = 0
    pruned = torch.zeros_like(W, dtype=torch.bool)  # (rows, columns), filled as masks are chosen
    width = block_size if structure is None else structure.group

    def prune_column(column: int, W_rest: torch.Tensor, U_diagonal: torch.Tensor) -> torch.Tensor:
        if column % width == 0:
            saliency = (W_rest[:, :width] / U_diagonal[:width]) ** 2  # (rows, <= width)
            if structure is None:
                assert sparsity is not None
                chosen = _lowest_in_block(saliency, sparsity, column)
            else:
                chosen = _lowest_per_row(saliency, structure.group - structure.kept)
            pruned[:, column : column + width] = chosen
        return W_rest[:, 0].masked_fill(pruned[:, column], 0)

    sweep_columns(W, U, block_size, prune_column)
    return W


def _prune_count(sparsity: float, rows: int, columns: int) -> int:
    """Weights pruned among the first `columns` columns; rounds half up, as magnitude does."""
    return math.floor(sparsity * rows * columns + 0.5)


def _lowest_in_block(saliency: torch.Tensor, sparsity: float, start: int) -> torch.Tensor:
    """The block's quota of lowest saliencies over all rows; ties to the lower row-major index."""
    import torch

    rows, width = saliency.shape
    quota = _prune_count(sparsity, rows, start + width) - _prune_count(sparsity, rows, start)
    chosen = torch.zeros(rows * width, dtype=torch.bool, device=saliency.device)
    chosen[torch.argsort(saliency.flatten(), stable=True)[:quota]] = True
    return chosen.reshape(rows, width)


def _lowest_per_row(saliency: torch.Tensor, count: int) -> torch.Tensor:
    """The `count` lowest saliencies of each row; ties prune the lower input index."""
    import torch

    order = torch.argsort(saliency, dim=-1, stable=True)  # (rows, group)
    chosen = torch.zeros_like(saliency, dtype=torch.bool)
    return chosen.scatter_(-1, order[:, :count], True)
