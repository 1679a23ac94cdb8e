"""The dense baseline: the pretrained model as loaded. Every study gets it once per model and level."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel
from torch import nn

from jdspec.compress.core import CompressionRecord, find_targets, measure, register_compressor

VERSION = 1


class NoneParams(BaseModel, extra="forbid", frozen=True):
    method: Literal["none"] = "none"

    def strength(self) -> float:
        return 0.0

    def family(self) -> str:
        return "dense"

    def strength_name(self) -> str:
        return "sparsity"


@register_compressor("none", NoneParams, VERSION)
def compress(model: nn.Module, params: NoneParams) -> CompressionRecord:
    """Change nothing; measure the zeros the pretrained weights already hold."""
    return measure("none", find_targets(model, ("Linear",), ()))
