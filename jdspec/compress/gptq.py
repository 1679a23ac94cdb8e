"""GPTQ (Frantar et al. 2023): quantize weights column by column, correcting the rest by OBS.

Each Linear is quantized to minimise ||W X^T - W' X^T||^2 on calibration inputs: columns are
visited left to right (obs.sweep_columns); a column is rounded to its grid (quantizer.py) and
its rounding error is spread over the row's later columns. With group_size, a group's grid is
fitted when the sweep reaches the group's first column, from the weights as corrected so far;
per row (group_size -1), one grid per row is fitted before the sweep. With actorder, columns
are visited by decreasing diag(H) (the most active inputs first) and groups are formed of
consecutive columns in that order, as the reference implementation without static groups.
Quantization is simulated: the dequantized weights stay in the model's dtype.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, model_validator

from jdspec.compress.calibration import CalibrationParams
from jdspec.compress.core import CompressionRecord, find_targets, register_compressor
from jdspec.compress.fields import (
    Bits,
    DampeningFrac,
    GroupSize,
    Ignore,
    Symmetric,
    Targets,
    check_group_size,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

VERSION = 1


class GPTQParams(BaseModel, extra="forbid", frozen=True):
    method: Literal["gptq"] = "gptq"
    bits: Bits
    group_size: GroupSize = -1
    symmetric: Symmetric = True
    actorder: bool = Field(
        False, description="Visit (and group) columns by decreasing diag(H) instead of in order."
    )
    block_size: int = Field(
        128,
        ge=1,
        description="Columns per block of the sweep; later blocks receive the block's "
        "corrections at once. A multiple of group_size.",
    )
    dampening_frac: DampeningFrac = 0.01
    targets: Targets = ("Linear",)
    ignore: Ignore = ()
    calibration: CalibrationParams = Field(
        CalibrationParams(), description="The token sequences the Hessians are collected on."
    )

    @model_validator(mode="after")
    def _groups_fit_blocks(self) -> GPTQParams:
        check_group_size(self.group_size)
        if self.group_size != -1 and self.block_size % self.group_size:
            raise ValueError(
                f"block_size {self.block_size} must be a multiple of group_size "
                f"{self.group_size}, so each group's grid is fitted on fully corrected weights"
            )
        return self

    def strength(self) -> float:
        return float(self.bits)

    def strength_name(self) -> str:
        return "bits"

    def family(self) -> str:
        return "gptq" if self.group_size == -1 else f"gptq g{self.group_size}"


_NOTES = (
    "simulated; grid per row fitted before the sweep, or per group when the sweep reaches its "
    "first column; actorder groups consecutive columns in decreasing-diag(H) order; "
    "bits = log2 of the most distinct values in one group"
)


@register_compressor("gptq", GPTQParams, VERSION, ("bits",), needs_calibration=True)
def compress(model: nn.Module, params: GPTQParams, calibration: torch.Tensor) -> CompressionRecord:
    """Quantize every target Linear with GPTQ, block by block on calibration activations."""
    import torch

    from jdspec.compress.calibration import compress_layerwise
    from jdspec.compress.quantizer import achieved_bits, check_group_size, quantization_record

    targets = find_targets(model, params.targets, params.ignore)
    check_group_size(targets, params.group_size)
    bits: dict[str, float] = {}

    def quantize(name: str, linear: nn.Linear, hessian: torch.Tensor) -> None:
        quantized, order = quantize_matrix(linear.weight, hessian, params)
        linear.weight.copy_(quantized)
        grouped = linear.weight if order is None else linear.weight[:, order]
        bits[name] = achieved_bits(grouped, params.group_size)

    with torch.no_grad():
        compress_layerwise(model, calibration, targets, "hessian", quantize)
    return quantization_record("gptq", targets, bits, _NOTES)


def quantize_matrix(
    W: torch.Tensor, H: torch.Tensor, params: GPTQParams
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """GPTQ's Algorithm 1 on one weight W (rows, columns) with Hessian H (columns, columns).

    Returns the quantized, dequantized weight in H's compute dtype (float32, or float64 for a
    float64 H) in the original column order, and the order the columns were visited and grouped
    in (None without actorder). Dead input columns (H_jj = 0) come back zero.
    """
    import torch

    from jdspec.compress.obs import inverse_hessian_cholesky, sweep_columns
    from jdspec.compress.quantizer import Grid, fit_grid, quantize

    order = torch.argsort(H.diagonal(), descending=True, stable=True) if params.actorder else None
    if order is not None:
        H, W = H[order][:, order], W[:, order]
    U, dead = inverse_hessian_cholesky(H, params.dampening_frac)  # (columns, columns)
    W = W.to(dtype=U.dtype, copy=True)  # (rows, columns)
    W[:, dead] = 0
    grid: Grid | None = None
    if params.group_size == -1:
        grid = fit_grid(W, params.bits, params.symmetric)

    def quantize_column(
        column: int, W_rest: torch.Tensor, U_diagonal: torch.Tensor
    ) -> torch.Tensor:
        nonlocal grid
        if params.group_size != -1 and column % params.group_size == 0:
            grid = fit_grid(W_rest[:, : params.group_size], params.bits, params.symmetric)
        assert grid is not None
        return quantize(W_rest[:, :1], grid)[:, 0]

    sweep_columns(W, U, params.block_size, quantize_column)
    if order is not None:
        W = W[:, torch.argsort(order)]
    return W, order
