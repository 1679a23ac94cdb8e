"""Parameter fields and rules that several methods share, declared once.

Each method keeps its own params model (STYLE: no implementation inheritance); what repeats is
written here as annotated types and small functions the models call.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from jdspec.compress.core import NM, NMField

Sparsity = Annotated[
    float | None, Field(ge=0, lt=1, description="Fraction of weights set to zero (unstructured).")
]
MaskStructure = Annotated[
    NMField | None,
    Field(description="'N:M': keep N of every M consecutive weights along the input dimension."),
]
Targets = Annotated[
    tuple[str, ...], Field(description="Layer class names, exact module names or 're:' regexes.")
]
Ignore = Annotated[tuple[str, ...], Field(description="Same forms as targets; removed from them.")]
Bits = Annotated[int, Field(ge=2, le=8, description="Bits per weight: 2^bits levels per grid.")]
GroupSize = Annotated[
    int, Field(description="Consecutive inputs sharing one grid (scale and zero); -1: per row.")
]
Symmetric = Annotated[
    bool, Field(description="Grid centred on 0 spanning max|w|; false: min..max with a zero point.")
]
DampeningFrac = Annotated[
    float, Field(ge=0, description="Added to H's diagonal, as a fraction of its mean, to invert.")
]


def check_one_structure(sparsity: float | None, structure: NM | None) -> None:
    """A pruning method takes a sparsity or an N:M structure, never both, never neither."""
    if (sparsity is None) == (structure is None):
        raise ValueError("give exactly one of sparsity (unstructured) or mask_structure (N:M)")


def check_group_size(group_size: int) -> None:
    if group_size != -1 and group_size < 1:
        raise ValueError(f"group_size must be -1 (per row) or positive, got {group_size}")


def pruning_strength(sparsity: float | None, structure: NM | None) -> float:
    """The sparsity a pruning variant asks for: N:M keeps N of M, so 1 - N/M."""
    if structure is not None:
        return structure.sparsity
    assert sparsity is not None
    return sparsity


def pruning_family(method: str, structure: NM | None) -> str:
    """'wanda' for unstructured curves, 'wanda N:8' for N:M curves of one M."""
    return method if structure is None else f"{method} N:{structure.group}"
