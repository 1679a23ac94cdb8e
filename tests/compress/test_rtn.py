"""Round to nearest and the shared grid: hand-worked rows, grid sizes, the registered method."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from jdspec.compress import apply_compressor
from jdspec.compress.quantizer import achieved_bits, distinct_levels, quantize_groups
from jdspec.compress.rtn import RTNParams, compress
from jdspec.errors import SpecError

ROW = [-1.5, -0.4, 0.7, 1.2]


def test_symmetric_two_bits_by_hand() -> None:
    # max|w| = 1.5, 4 levels: scale = 2 * 1.5 / 3 = 1, zero = 2, levels -2 .. 1 times the scale;
    # -1.5 is a tie and rounds to even (-2); 1.2 rounds to 1, the top level
    result = quantize_groups(torch.tensor([ROW], dtype=torch.float64), 2, -1, symmetric=True)
    assert result.tolist() == [[-2.0, 0.0, 1.0, 1.0]]


def test_asymmetric_two_bits_by_hand() -> None:
    # range [-1.5, 1.2]: scale = 2.7 / 3 = 0.9, zero = round(1.5 / 0.9) = 2;
    # w / scale = -1.67, -0.44, 0.78, 1.33 rounds to -2, 0, 1, 1
    result = quantize_groups(torch.tensor([ROW], dtype=torch.float64), 2, -1, symmetric=False)
    torch.testing.assert_close(result, torch.tensor([[-1.8, 0.0, 0.9, 0.9]], dtype=torch.float64))


def test_groups_get_their_own_grid_by_hand() -> None:
    weight = torch.tensor([ROW + [0.3, 0.75, 1.5, 0.1], [0.0] * 8], dtype=torch.float64)
    result = quantize_groups(weight, 2, 4, symmetric=True)
    # second group: max|w| = 1.5 again, so scale 1: 0.3, 0.75, 1.5, 0.1 round to 0, 1, 2 -> 1, 0
    assert result.tolist() == [[-2.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0], [0.0] * 8]


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize(("bits", "group_size"), [(2, -1), (3, 8), (4, 16), (5, -1)])
def test_each_group_holds_at_most_two_to_the_bits_values(
    bits: int, group_size: int, symmetric: bool
) -> None:
    generator = torch.Generator().manual_seed(bits)
    weight = torch.randn(24, 96, generator=generator) * torch.logspace(-2, 0, 24).unsqueeze(1)
    quantized = quantize_groups(weight, bits, group_size, symmetric)
    assert 2 ** (bits - 1) < distinct_levels(quantized, group_size) <= 2**bits
    assert (quantized - weight).abs().max() < (weight.abs().max() * 2 / (2**bits - 1))
    assert achieved_bits(quantized, group_size) == round(
        math.log2(distinct_levels(quantized, group_size)), 4
    )


def test_distinct_levels_by_hand() -> None:
    weight = torch.tensor([[1.0, 1.0, 2.0, 2.0, 3.0, 3.0], [0.0, 0.0, 0.0, 5.0, 6.0, 7.0]])
    assert distinct_levels(weight, -1) == 4
    assert distinct_levels(weight, 3) == 3
    assert distinct_levels(weight, 2) == 2


def _model(dtype: torch.dtype) -> nn.Module:
    generator = torch.Generator().manual_seed(0)
    model = nn.ModuleDict(
        {"layers": nn.ModuleList([nn.Linear(32, 16, bias=False), nn.Linear(16, 32, bias=False)])}
    )
    with torch.no_grad():
        for linear in model.layers:
            linear.weight.copy_(torch.randn(linear.weight.shape, generator=generator))
    return model.to(dtype)


def test_registered_function_quantizes_in_the_model_dtype() -> None:
    model = _model(torch.bfloat16)
    expected = [quantize_groups(linear.weight, 3, 8, False) for linear in model.layers]
    record = compress(model, RTNParams(bits=3, group_size=8, symmetric=False), None)
    for linear, quantized in zip(model.layers, expected, strict=True):
        assert linear.weight.dtype == torch.bfloat16
        assert torch.equal(linear.weight, quantized.to(torch.bfloat16))
    assert [stats.name for stats in record.matrices] == ["layers.0", "layers.1"]
    for linear, stats in zip(model.layers, record.matrices, strict=True):
        assert stats.bits == achieved_bits(linear.weight, 8) <= 3.0
    assert record.method == "rtn" and "ties" in record.notes


def test_apply_compressor_needs_no_calibration_and_honours_ignore() -> None:
    model = _model(torch.float32)
    untouched = model.layers[1].weight.detach().clone()
    record = apply_compressor(model, RTNParams(bits=2, ignore=("layers.1",)))
    assert [stats.name for stats in record.matrices] == ["layers.0"]
    assert distinct_levels(model.layers[0].weight, -1) <= 4
    assert torch.equal(model.layers[1].weight, untouched)


def test_params_and_bad_group_sizes() -> None:
    assert (RTNParams(bits=4).family(), RTNParams(bits=4, group_size=64).family()) == (
        "rtn",
        "rtn g64",
    )
    assert RTNParams(bits=4).strength() == 4.0
    with pytest.raises(ValidationError):
        RTNParams(bits=9)
    with pytest.raises(ValidationError, match="-1 .per row. or positive"):
        RTNParams(bits=4, group_size=-2)
    model = _model(torch.float32)
    dense = [linear.weight.detach().clone() for linear in model.layers]
    with pytest.raises(SpecError, match=r"group_size 32: layers\.1 has 16 input features"):
        compress(model, RTNParams(bits=4, group_size=32), None)
    assert all(
        torch.equal(linear.weight, weight)
        for linear, weight in zip(model.layers, dense, strict=True)
    )
