"""Low rank: replace each target weight by its best rank-r approximation (truncated SVD).

By Eckart-Young, U_r S_r V_r^T minimizes ||W - W_r|| in Frobenius and spectral norm among
rank-r matrices. The product is stored back into the same dense Linear, so the model keeps its
shape and dtype; the record carries the rank kept, which is what a factorized layer would store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, model_validator

from jdspec.compress.core import CompressionRecord, find_targets, measure, register_compressor
from jdspec.compress.fields import Ignore, Targets
from jdspec.results import MatrixStats

if TYPE_CHECKING:
    import torch
    from torch import nn

VERSION = 1


class LowRankParams(BaseModel, extra="forbid", frozen=True):
    method: Literal["lowrank"] = "lowrank"
    rank: int | None = Field(
        None, ge=1, description="Singular values kept per matrix, capped at min(out, in)."
    )
    energy: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Keep the smallest rank whose squared singular values reach this fraction "
        "of the matrix's total (squared Frobenius norm).",
    )
    targets: Targets = ("Linear",)
    ignore: Ignore = ()

    @model_validator(mode="after")
    def _one_strength(self) -> LowRankParams:
        if (self.rank is None) == (self.energy is None):
            raise ValueError("give exactly one of rank or energy")
        return self

    def strength(self) -> float:
        if self.energy is not None:
            return self.energy
        assert self.rank is not None
        return float(self.rank)

    def strength_name(self) -> str:
        return "rank" if self.rank is not None else "energy"

    def family(self) -> str:
        return "lowrank" if self.rank is not None else "lowrank energy"


@register_compressor("lowrank", LowRankParams, VERSION, ("rank", "energy"))
def compress(model: nn.Module, params: LowRankParams, calibration: None) -> CompressionRecord:
    """Truncate every target Linear's SVD in place; record each matrix's kept rank."""
    import torch

    targets = find_targets(model, params.targets, params.ignore)
    ranks: dict[str, int] = {}
    with torch.no_grad():
        for name, linear in targets.items():
            ranks[name] = _truncate(linear.weight, params.rank, params.energy)
    counted = measure("lowrank", targets)
    matrices = tuple(
        MatrixStats(stats.name, stats.numel, stats.zeros, rank=ranks[stats.name])
        for stats in counted.matrices
    )
    return CompressionRecord(method="lowrank", matrices=matrices)


def _energy_rank(singular_values: torch.Tensor, energy: float) -> int:
    """The smallest r with s_1^2 + ... + s_r^2 >= energy * (s_1^2 + ... + s_k^2)."""
    import torch

    cumulative = torch.cumsum(singular_values.double() ** 2, dim=0)
    # a 1e-12 relative slack so energy=1 and exact boundaries survive summation rounding
    reached = cumulative >= energy * cumulative[-1] * (1 - 1e-12)
    return int(torch.nonzero(reached)[0]) + 1


def _truncate(weight: torch.Tensor, rank: int | None, energy: float | None) -> int:
    """Overwrite W (out, in) with U_r S_r V_r^T, computed in float32 (float64 if W is); return r."""
    import torch

    compute_dtype = torch.float64 if weight.dtype == torch.float64 else torch.float32
    W = weight.detach().to(compute_dtype)  # (out, in)
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)  # (out, k), (k,), (k, in)
    if rank is not None:
        kept = min(rank, S.numel())
    else:
        assert energy is not None
        kept = _energy_rank(S, energy)
    W_r = (U[:, :kept] * S[:kept]) @ Vh[:kept]  # (out, in)
    weight.copy_(W_r.to(weight.dtype))
    return kept
