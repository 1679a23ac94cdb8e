"""The uniform integer grid GPTQ and RTN round weights to, and the measure of what they achieved.

A grid with `bits` bits has levels q = 0 .. 2^bits - 1; a weight w is stored as
q = clamp(round(w / scale) + zero, 0, 2^bits - 1) and read back as scale * (q - zero). One grid
covers a row (group_size -1) or group_size consecutive inputs of a row. Quantization here is
simulated: the dequantized values are written back in the model's dtype.

Imported lazily by the quantizers' registered functions, so importing torch at the top is fine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch

from jdspec.compress.core import CompressionRecord, measure
from jdspec.errors import SpecError

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class Grid:
    """Scale and zero point of one grid per slice; both broadcast against the slice's weights."""

    scale: torch.Tensor  # (..., 1)
    zero: torch.Tensor  # (..., 1), an integer-valued level
    maximum: int  # 2^bits - 1, the highest level


def fit_grid(weights: torch.Tensor, bits: int, symmetric: bool) -> Grid:
    """One grid per slice along the last dimension, spanning the slice's range and 0.

    Asymmetric: [min(w, 0), max(w, 0)] maps onto 0 .. 2^bits - 1 with a rounded zero point, so
    0 is always a level (pruned and dead weights stay exactly 0). Symmetric: [-max|w|, max|w|]
    with the zero point fixed at the middle level 2^(bits-1) (GPTQ's symmetric grid).
    """
    maximum = 2**bits - 1
    low = weights.amin(dim=-1, keepdim=True).clamp(max=0)
    high = weights.amax(dim=-1, keepdim=True).clamp(min=0)
    if symmetric:
        high = torch.maximum(-low, high)
        low = -high
    empty = (low == 0) & (high == 0)  # an all-zero slice: any positive scale keeps it zero
    low = torch.where(empty, -1.0, low)
    high = torch.where(empty, 1.0, high)
    scale = (high - low) / maximum
    middle = torch.full_like(scale, (maximum + 1) / 2)
    zero = middle if symmetric else torch.round(-low / scale)
    return Grid(scale, zero, maximum)


def quantize(weights: torch.Tensor, grid: Grid) -> torch.Tensor:
    """Round `weights` to the nearest level of `grid` (ties to even) and dequantize."""
    levels = torch.clamp(torch.round(weights / grid.scale) + grid.zero, 0, grid.maximum)
    return grid.scale * (levels - grid.zero)


def quantize_groups(
    weight: torch.Tensor, bits: int, group_size: int, symmetric: bool
) -> torch.Tensor:
    """Round-to-nearest: each group's own grid fitted to the group, in float32 or wider."""
    rows, columns = weight.shape
    width = columns if group_size == -1 else group_size
    compute = weight.to(torch.promote_types(weight.dtype, torch.float32))
    grouped = compute.reshape(rows, columns // width, width)  # (rows, groups, width)
    return quantize(grouped, fit_grid(grouped, bits, symmetric)).reshape(rows, columns)


def distinct_levels(weight: torch.Tensor, group_size: int) -> int:
    """The most distinct values any one group (or row, for group_size -1) holds."""
    rows, columns = weight.shape
    width = columns if group_size == -1 else group_size
    ordered = weight.reshape(rows * (columns // width), width).sort(dim=-1).values
    changes = (ordered[:, 1:] != ordered[:, :-1]).sum(dim=-1)
    return int(changes.max()) + 1


def achieved_bits(weight: torch.Tensor, group_size: int) -> float:
    """log2 of the most distinct values in a group: 4.0 for a full 4-bit grid, less if unused."""
    return round(math.log2(distinct_levels(weight, group_size)), 4)


def check_group_size(targets: dict[str, nn.Linear], group_size: int) -> None:
    """Reject before quantizing anything, so a bad spec leaves the model whole."""
    if group_size == -1:
        return
    for name, linear in targets.items():
        if linear.in_features % group_size:
            raise SpecError(
                f"group_size {group_size}: {name} has {linear.in_features} input features, "
                f"not a multiple of {group_size} (use group_size -1 for one grid per row)"
            )


def quantization_record(
    method: str, targets: dict[str, nn.Linear], bits: dict[str, float], notes: str
) -> CompressionRecord:
    """Zeros counted and bits measured on every target, as GPTQ and RTN both report them."""
    counted = measure(method, targets, notes)
    matrices = tuple(replace(stats, bits=bits[stats.name]) for stats in counted.matrices)
    return replace(counted, matrices=matrices)
