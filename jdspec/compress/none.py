"""The dense baseline: the pretrained model as loaded; every study gets it once per level."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel

from jdspec.compress.core import CompressionRecord, find_targets, measure, register_compressor

if TYPE_CHECKING:
    from torch import nn

VERSION = 1


class NoneParams(BaseModel, extra="forbid", frozen=True):
    method: Literal["none"] = "none"

    def strength(self) -> float:
        return 0.0

    def family(self) -> str:
        return "dense"

    def strength_name(self) -> str:
        return "sparsity"


@register_compressor("none", NoneParams, VERSION, supports_transfer=True)  # transfer: dense
def compress(model: nn.Module, params: NoneParams, calibration: None) -> CompressionRecord:
    """Change nothing; measure the zeros the pretrained weights already hold."""
    return measure("none", find_targets(model, ("Linear",), ()))
