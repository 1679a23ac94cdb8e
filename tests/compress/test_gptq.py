"""GPTQ on correlated float64 layers: a textbook reference, RTN as the bar, grids kept."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from torch import nn

from jdspec.compress import COMPRESSORS
from jdspec.compress.gptq import GPTQParams, compress, quantize_matrix
from jdspec.compress.quantizer import distinct_levels, quantize_groups
from jdspec.errors import SpecError
from tests.compress.test_obs import correlated_layer, obs_reference, reconstruction_error
from tests.helpers import tiny_llama


@pytest.mark.parametrize("actorder", [False, True])
@pytest.mark.parametrize("group_size", [-1, 32])
@pytest.mark.parametrize("bits", [3, 4])
def test_reconstruction_beats_round_to_nearest(bits: int, group_size: int, actorder: bool) -> None:
    W, X, H = correlated_layer(seed=0)
    params = GPTQParams(bits=bits, group_size=group_size, actorder=actorder)
    quantized, _ = quantize_matrix(W, H, params)
    rounded = quantize_groups(W, bits, group_size, symmetric=True)
    assert reconstruction_error(W, quantized, X) < 0.97 * reconstruction_error(W, rounded, X)


def _numpy_grid(weights: np.ndarray, bits: int, symmetric: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-row scale and zero over [min(w, 0), max(w, 0)], or [-max|w|, max|w|] centred."""
    maximum = 2**bits - 1
    low = np.minimum(weights.min(axis=1, keepdims=True), 0)
    high = np.maximum(weights.max(axis=1, keepdims=True), 0)
    if symmetric:
        high = np.maximum(-low, high)
        low = -high
    scale = (high - low) / maximum
    zero = np.full_like(scale, (maximum + 1) / 2) if symmetric else np.round(-low / scale)
    return scale, zero


def _reference_gptq(W: np.ndarray, H: np.ndarray, params: GPTQParams) -> np.ndarray:
    """Textbook GPTQ: columns in (activation) order, each group's grid from current weights."""
    columns = W.shape[1]
    order = np.argsort(-np.diag(H), kind="stable") if params.actorder else np.arange(columns)
    width = columns if params.group_size == -1 else params.group_size
    grid: dict[str, np.ndarray] = {}

    def rule(j: int, current: np.ndarray, _: np.ndarray) -> np.ndarray:
        if j % width == 0:
            grid["scale"], grid["zero"] = _numpy_grid(
                current[:, j : j + width], params.bits, params.symmetric
            )
        scale, zero = grid["scale"][:, 0], grid["zero"][:, 0]
        levels = np.clip(np.round(current[:, j] / scale) + zero, 0, 2**params.bits - 1)
        return scale * (levels - zero)

    swept = obs_reference(W[:, order], H[np.ix_(order, order)], params.dampening_frac, rule)
    return swept[:, np.argsort(order)]


@pytest.mark.parametrize(
    "params",
    [
        GPTQParams(bits=4),
        GPTQParams(bits=3, group_size=16, actorder=True, block_size=32),
        GPTQParams(bits=2, group_size=32, symmetric=False, block_size=32),
        GPTQParams(bits=4, symmetric=False, actorder=True, block_size=24),
    ],
)
def test_matches_textbook_reference(params: GPTQParams) -> None:
    W, _, H = correlated_layer(seed=1, rows=16, inputs=64, tokens=512)
    quantized, _ = quantize_matrix(W, H, params)
    expected = _reference_gptq(W.numpy(), H.numpy(), params)
    np.testing.assert_allclose(quantized.numpy(), expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("actorder", [False, True])
@pytest.mark.parametrize(("bits", "group_size"), [(2, -1), (3, 16), (4, 32), (6, -1)])
def test_each_group_holds_at_most_two_to_the_bits_values(
    bits: int, group_size: int, actorder: bool
) -> None:
    W, _, H = correlated_layer(seed=2, rows=32, inputs=96, tokens=512)
    params = GPTQParams(bits=bits, group_size=group_size, actorder=actorder, block_size=32)
    quantized, order = quantize_matrix(W, H, params)
    assert (order is not None) == actorder
    grouped = quantized if order is None else quantized[:, order]
    assert 2 ** (bits - 1) < distinct_levels(grouped, group_size) <= 2**bits


def test_dead_input_columns_are_zeroed() -> None:
    W, X, _ = correlated_layer(seed=3, rows=8, inputs=32, tokens=256)
    X[:, [0, 9]] = 0
    params = GPTQParams(bits=3, group_size=8, actorder=True, block_size=32)
    quantized, _ = quantize_matrix(W, 2 / 256 * X.T @ X, params)
    assert bool(quantized.isfinite().all())
    assert bool((quantized[:, [0, 9]] == 0).all())


def test_params_validate_groups_and_name_the_family() -> None:
    assert (GPTQParams(bits=4).family(), GPTQParams(bits=4).strength()) == ("gptq", 4.0)
    assert GPTQParams(bits=3, group_size=128).family() == "gptq g128"
    assert GPTQParams(bits=3).strength_name() == "bits"
    with pytest.raises(ValidationError, match="multiple of group_size 256"):
        GPTQParams(bits=4, group_size=256)
    assert GPTQParams(bits=4, group_size=256, block_size=256).group_size == 256
    with pytest.raises(ValidationError, match="-1 .per row. or positive"):
        GPTQParams(bits=4, group_size=0)
    with pytest.raises(ValidationError):
        GPTQParams(bits=1)


@pytest.mark.parametrize(
    "params",
    [GPTQParams(bits=3), GPTQParams(bits=4, group_size=16, actorder=True, symmetric=False)],
)
def test_registered_function_quantizes_a_bf16_llama(params: GPTQParams) -> None:
    model = tiny_llama(vocab_size=64, seed=0).to(torch.bfloat16)
    head = model.lm_head.weight.detach().clone()
    assert COMPRESSORS.get("gptq").function is compress
    calibration = torch.randint(64, (4, 24), generator=torch.Generator().manual_seed(1))
    record = compress(model, params, calibration)
    assert torch.equal(model.lm_head.weight, head)
    modules = dict(model.named_modules())
    assert len(record.matrices) == 2 * 7
    for stats in record.matrices:
        weight = modules[stats.name].weight
        assert weight.dtype == torch.bfloat16
        assert stats.bits is not None and 0 < stats.bits <= params.bits
        assert stats.zeros == int((weight == 0).sum())
        if not params.actorder:
            assert distinct_levels(weight, params.group_size) == round(2**stats.bits)
    assert record.method == "gptq" and "simulated" in record.notes


def test_groups_not_dividing_inputs_raise_before_quantizing() -> None:
    model = nn.ModuleDict({"layers": nn.ModuleList([nn.Linear(32, 8), nn.Linear(48, 8)])})
    dense = [linear.weight.detach().clone() for linear in model.layers]
    with pytest.raises(SpecError, match=r"group_size 32: layers\.1 has 48 input features"):
        compress(model, GPTQParams(bits=4, group_size=32), torch.zeros(1, 8, dtype=torch.long))
    assert all(
        torch.equal(linear.weight, weight)
        for linear, weight in zip(model.layers, dense, strict=True)
    )
