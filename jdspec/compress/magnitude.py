"""Magnitude pruning: zero the smallest |W|, per matrix, over all matrices, or N of every M."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator
from torch import nn

from jdspec.compress.core import (
    NMField,
    CompressionRecord,
    find_targets,
    measure,
    register_compressor,
)

VERSION = 1


class MagnitudeParams(BaseModel, extra="forbid", frozen=True):
    method: Literal["magnitude"] = "magnitude"
    sparsity: float | None = Field(
        None, ge=0, lt=1, description="Fraction of each target's weights set to zero (unstructured)."
    )
    mask_structure: NMField | None = Field(
        None, description="'N:M': keep N of every M consecutive weights along the input dimension."
    )
    scope: Literal["layer", "global"] = Field(
        "layer",
        description="layer: one threshold per weight matrix (the paper's LLM setting); "
        "global: one threshold over all target matrices (the paper's RoBERTa setting).",
    )
    targets: tuple[str, ...] = Field(
        ("Linear",), description="Layer class names, exact module names or 're:' regexes."
    )
    ignore: tuple[str, ...] = Field((), description="Same forms as targets; removed from them.")

    @model_validator(mode="after")
    def _one_structure(self) -> MagnitudeParams:
        if (self.sparsity is None) == (self.mask_structure is None):
            raise ValueError("give exactly one of sparsity (unstructured) or mask_structure (N:M)")
        if self.mask_structure is not None and self.scope == "global":
            raise ValueError("mask_structure N:M is chosen per group; scope must be 'layer'")
        return self

    def strength(self) -> float:
        if self.mask_structure is not None:
            return self.mask_structure.sparsity
        assert self.sparsity is not None
        return self.sparsity

    def family(self) -> str:
        if self.mask_structure is not None:
            return f"magnitude N:{self.mask_structure.group}"
        return "magnitude" if self.scope == "layer" else "magnitude global"


@register_compressor("magnitude", MagnitudeParams, VERSION, ("sparsity", "mask_structure"))
def compress(model: nn.Module, params: MagnitudeParams) -> CompressionRecord:
    """Zero the smallest-magnitude weights of every target Linear; ties go to the lower index."""
    raise NotImplementedError("being written")
