"""Round to nearest: quantize each weight to its group's uniform grid, without calibration.

The baseline GPTQ is measured against: the same grid (quantizer.py), fitted to each row or group
of group_size consecutive inputs, every weight rounded independently. Quantization is simulated:
the dequantized weights stay in the model's dtype.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, model_validator

from jdspec.compress.core import CompressionRecord, find_targets, register_compressor
from jdspec.compress.fields import Bits, GroupSize, Ignore, Symmetric, Targets, check_group_size

if TYPE_CHECKING:
    from torch import nn

VERSION = 1


class RTNParams(BaseModel, extra="forbid", frozen=True):
    method: Literal["rtn"] = "rtn"
    bits: Bits
    group_size: GroupSize = -1
    symmetric: Symmetric = True
    targets: Targets = ("Linear",)
    ignore: Ignore = ()

    @model_validator(mode="after")
    def _group_size_valid(self) -> RTNParams:
        check_group_size(self.group_size)
        return self

    def strength(self) -> float:
        return float(self.bits)

    def strength_name(self) -> str:
        return "bits"

    def family(self) -> str:
        return "rtn" if self.group_size == -1 else f"rtn g{self.group_size}"


_NOTES = "simulated; ties round to even; bits = log2 of the most distinct values in one group"


@register_compressor("rtn", RTNParams, VERSION, ("bits",))
def compress(model: nn.Module, params: RTNParams, calibration: None) -> CompressionRecord:
    """Round every target Linear's weights to their group's grid; record the bits achieved."""
    import torch

    from jdspec.compress.quantizer import (
        achieved_bits,
        check_group_size,
        quantization_record,
        quantize_groups,
    )

    targets = find_targets(model, params.targets, params.ignore)
    check_group_size(targets, params.group_size)
    bits: dict[str, float] = {}
    with torch.no_grad():
        for name, linear in targets.items():
            quantized = quantize_groups(
                linear.weight, params.bits, params.group_size, params.symmetric
            )
            linear.weight.copy_(quantized)
            bits[name] = achieved_bits(linear.weight, params.group_size)
    return quantization_record("rtn", targets, bits, _NOTES)
