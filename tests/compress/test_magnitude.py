"""Magnitude pruning against independent numpy references (stable argsort, float64 scores)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from jdspec.compress import apply_compressor
from jdspec.compress.magnitude import MagnitudeParams, compress, pruning_masks
from jdspec.errors import SpecError

HIDDEN = 32
INTERMEDIATE = 64
VOCABULARY = 100


def _linear(in_features: int, out_features: int) -> nn.Linear:
    return nn.Linear(in_features, out_features, bias=False)


def _block() -> nn.ModuleDict:
    attention = {name: _linear(HIDDEN, HIDDEN) for name in ("q_proj", "k_proj", "v_proj", "o_proj")}
    mlp = {
        "gate_proj": _linear(HIDDEN, INTERMEDIATE),
        "up_proj": _linear(HIDDEN, INTERMEDIATE),
        "down_proj": _linear(INTERMEDIATE, HIDDEN),
    }
    return nn.ModuleDict(
        {
            "self_attn": nn.ModuleDict(attention),
            "mlp": nn.ModuleDict(mlp),
            "input_layernorm": nn.LayerNorm(HIDDEN),
        }
    )


def _tiny_llama(
    seed: int, with_zeros: bool = True, dtype: torch.dtype = torch.float32
) -> nn.Module:
    """A Llama-shaped model whose Linears hold 4-bit-like levels, so |W| has many ties.

    Each matrix gets its own scale, so one global threshold differs from per-matrix ones.
    """
    model = nn.ModuleDict(
        {
            "embed_tokens": nn.Embedding(VOCABULARY, HIDDEN),
            "layers": nn.ModuleList([_block() for _ in range(2)]),
            "norm": nn.LayerNorm(HIDDEN),
            "lm_head": _linear(HIDDEN, VOCABULARY),
        }
    )
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            levels = torch.randint(0, 16, parameter.shape, generator=generator).float()
            # with zeros: levels -8..7 (0 included); without: -7.5..7.5 (16 non-zero levels)
            levels = levels - (8.0 if with_zeros else 7.5)
            scale = 0.01 + 0.1 * torch.rand((), generator=generator)
            parameter.copy_(levels * scale)
    return model.to(dtype)


def _targets(model: nn.Module) -> dict[str, nn.Linear]:
    """The block Linears in module order: the order find_targets returns them."""
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and name.startswith("layers.")
    }


def _numpy_weights(model: nn.Module) -> dict[str, np.ndarray]:
    return {
        name: linear.weight.detach().float().numpy().copy()
        for name, linear in _targets(model).items()
    }


def _reference_smallest(weights: list[np.ndarray], sparsity: float) -> list[np.ndarray]:
    """Zero the first k of a stable ascending argsort of |w| over the concatenation."""
    scores = np.concatenate([np.abs(weight.astype(np.float64)).ravel() for weight in weights])
    count = math.floor(sparsity * scores.size + 0.5)
    pruned = np.zeros(scores.size, dtype=bool)
    pruned[np.argsort(scores, kind="stable")[:count]] = True
    result, start = [], 0
    for weight in weights:
        mask = pruned[start : start + weight.size].reshape(weight.shape)
        result.append(np.where(mask, 0.0, weight))
        start += weight.size
    return result


def _reference_nm(weight: np.ndarray, kept: int, group: int) -> np.ndarray:
    """Keep the first `kept` of a stable descending argsort of |w| in each group of inputs."""
    rows, columns = weight.shape
    scores = np.abs(weight.astype(np.float64)).reshape(rows, columns // group, group)
    order = np.argsort(-scores, axis=-1, kind="stable")
    pruned = np.zeros(scores.shape, dtype=bool)
    np.put_along_axis(pruned, order[..., kept:], True, axis=-1)
    return np.where(pruned.reshape(rows, columns), 0.0, weight)


def _assert_weights(model: nn.Module, expected: dict[str, np.ndarray]) -> None:
    for name, linear in _targets(model).items():
        np.testing.assert_array_equal(linear.weight.detach().float().numpy(), expected[name])


@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.37, 0.5, 0.9, 0.999])
@pytest.mark.parametrize("with_zeros", [True, False])
def test_layer_scope_matches_stable_argsort(sparsity: float, with_zeros: bool) -> None:
    model = _tiny_llama(seed=1, with_zeros=with_zeros)
    before = _numpy_weights(model)
    compress(model, MagnitudeParams(sparsity=sparsity), None)
    expected = {name: _reference_smallest([weight], sparsity)[0] for name, weight in before.items()}
    _assert_weights(model, expected)


def test_layer_scope_hand_worked_ties() -> None:
    model = nn.ModuleDict({"layers": nn.ModuleList([_linear(4, 3)])})
    with torch.no_grad():
        model.layers[0].weight.copy_(torch.tensor([[1, -1, 2, 1], [0, 1, -2, 1], [1, 1, 3, -1.0]]))
    compress(model, MagnitudeParams(sparsity=0.5), None)
    # k = 6: the zero, then the five earliest |w| = 1 in row-major order
    expected = torch.tensor([[0, 0, 2, 0], [0, 0, -2, 0], [1, 1, 3, -1.0]])
    assert torch.equal(model.layers[0].weight, expected)


def test_global_scope_ties_cross_matrices_in_order() -> None:
    model = nn.ModuleDict({"layers": nn.ModuleList([_linear(2, 2), _linear(2, 2)])})
    with torch.no_grad():
        for linear in model.layers:
            linear.weight.fill_(-1.0)
    record = compress(model, MagnitudeParams(sparsity=0.75, scope="global"), None)
    # k = 6 of 8 equal magnitudes: all of the first matrix, then the second's first row
    assert torch.equal(model.layers[0].weight, torch.zeros(2, 2))
    assert torch.equal(model.layers[1].weight, torch.tensor([[0.0, 0.0], [-1.0, -1.0]]))
    assert [stats.zeros for stats in record.matrices] == [4, 2]


@pytest.mark.parametrize("sparsity", [0.0, 0.2, 0.5, 0.73, 0.95])
def test_global_scope_matches_concatenation(sparsity: float) -> None:
    model = _tiny_llama(seed=2, with_zeros=False)
    before = _numpy_weights(model)
    record = compress(model, MagnitudeParams(sparsity=sparsity, scope="global"), None)
    expected = dict(zip(before, _reference_smallest(list(before.values()), sparsity), strict=True))
    _assert_weights(model, expected)
    total = sum(weight.size for weight in before.values())
    assert record.sparsity == math.floor(sparsity * total + 0.5) / total


@pytest.mark.parametrize("seed", range(4))
def test_global_scope_spans_exponents(seed: int) -> None:
    """Subnormals, zeros and large values: the bit-pattern bisection must order them all."""
    model = nn.ModuleDict({"layers": nn.ModuleList([_linear(16, 8), _linear(8, 24)])})
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for linear in model.layers:
            exponents = torch.randint(-44, 30, linear.weight.shape, generator=generator)
            values = torch.randn(linear.weight.shape, generator=generator, dtype=torch.float64)
            linear.weight.copy_((values * 10.0**exponents).float())
            linear.weight.view(-1)[:5] = 0.0
    before = _numpy_weights(model)
    compress(model, MagnitudeParams(sparsity=0.6, scope="global"), None)
    expected = dict(zip(before, _reference_smallest(list(before.values()), 0.6), strict=True))
    _assert_weights(model, expected)


@pytest.mark.parametrize(("kept", "group"), [(2, 4), (1, 8), (7, 8), (8, 8), (1, 2), (3, 16)])
def test_nm_keeps_exactly_n_of_every_m(kept: int, group: int) -> None:
    model = _tiny_llama(seed=3, with_zeros=False)
    before = _numpy_weights(model)
    record = compress(model, MagnitudeParams(mask_structure=f"{kept}:{group}"), None)
    expected = {name: _reference_nm(weight, kept, group) for name, weight in before.items()}
    _assert_weights(model, expected)
    for linear in _targets(model).values():
        nonzeros = (linear.weight != 0).reshape(linear.out_features, -1, group).sum(dim=-1)
        assert bool((nonzeros == kept).all())
    assert record.sparsity == 1 - kept / group


def test_nm_with_preexisting_zeros_matches_reference() -> None:
    model = _tiny_llama(seed=4, with_zeros=True)
    before = _numpy_weights(model)
    compress(model, MagnitudeParams(mask_structure="2:4"), None)
    _assert_weights(model, {name: _reference_nm(weight, 2, 4) for name, weight in before.items()})


@pytest.mark.parametrize("sparsity", [0.1, 0.33, 0.5, 0.77])
def test_record_counts_zeros_in_weights(sparsity: float) -> None:
    model = _tiny_llama(seed=5, with_zeros=False)
    record = compress(model, MagnitudeParams(sparsity=sparsity), None)
    targets = _targets(model)
    assert [stats.name for stats in record.matrices] == list(targets)
    for stats in record.matrices:
        weight = targets[stats.name].weight
        assert stats.numel == weight.numel()
        assert stats.zeros == int((weight == 0).sum())
        assert abs(stats.sparsity - sparsity) <= 0.5 / stats.numel + 1e-12
    assert record.method == "magnitude"
    assert "ties" in record.notes


def test_bf16_weights_and_untouched_embeddings_and_head() -> None:
    model = _tiny_llama(seed=6, dtype=torch.bfloat16)
    untouched = {
        name: parameter.detach().clone()
        for name, parameter in model.named_parameters()
        if not name.startswith("layers.") or "layernorm" in name
    }
    before = _numpy_weights(model)
    compress(model, MagnitudeParams(sparsity=0.6), None)
    for name, parameter in model.named_parameters():
        if name in untouched:
            assert torch.equal(parameter, untouched[name]), name
    expected = {name: _reference_smallest([weight], 0.6)[0] for name, weight in before.items()}
    _assert_weights(model, expected)
    assert all(linear.weight.dtype == torch.bfloat16 for linear in _targets(model).values())


def test_ignore_leaves_matrices_dense() -> None:
    model = _tiny_llama(seed=7, with_zeros=False)
    record = compress(model, MagnitudeParams(sparsity=0.5, ignore=("re:.*down_proj",)), None)
    assert all("down_proj" not in stats.name for stats in record.matrices)
    for name, linear in _targets(model).items():
        assert bool((linear.weight == 0).any()) == ("down_proj" not in name)


def test_registered_compressor_matches_direct_call() -> None:
    params = MagnitudeParams.model_validate({"method": "magnitude", "mask_structure": "2:4"})
    direct, registered = _tiny_llama(seed=8), _tiny_llama(seed=8)
    compress(direct, params, None)
    record = apply_compressor(registered, params)
    _assert_weights(registered, _numpy_weights(direct))
    assert record.method == "magnitude"


def test_groups_not_dividing_inputs_raise_before_pruning() -> None:
    model = nn.ModuleDict({"layers": nn.ModuleList([_linear(32, 16), _linear(30, 16)])})
    dense = [linear.weight.detach().clone() for linear in model.layers]
    with pytest.raises(SpecError, match=r"layers\.1.*30 input features.*M=4"):
        compress(model, MagnitudeParams(mask_structure="2:4"), None)
    assert all(
        torch.equal(linear.weight, weight)
        for linear, weight in zip(model.layers, dense, strict=True)
    )


@pytest.mark.parametrize(
    "params",
    [
        MagnitudeParams(sparsity=0.37),
        MagnitudeParams(sparsity=0.6, scope="global"),
        MagnitudeParams(mask_structure="2:4"),
    ],
    ids=["layer", "global", "2:4"],
)
def test_pruning_masks_are_the_weights_compress_zeroes(params: MagnitudeParams) -> None:
    """Without pretrained zeros (and with many ties), the mask is exactly where compress zeroes."""
    model = _tiny_llama(seed=9, with_zeros=False)
    before = {name: linear.weight.detach().clone() for name, linear in _targets(model).items()}
    masks = pruning_masks(_targets(model), params)
    for name, linear in _targets(model).items():
        assert torch.equal(linear.weight, before[name]), "pruning_masks must not change weights"
    compress(model, params, None)
    assert list(masks) == list(_targets(model))
    for name, linear in _targets(model).items():
        assert masks[name].dtype == torch.bool
        assert torch.equal(masks[name], linear.weight == 0), name
