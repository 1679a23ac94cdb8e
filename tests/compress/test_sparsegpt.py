"""SparseGPT on correlated float64 layers: exact masks, a textbook reference, the baselines."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from torch import nn

from jdspec.compress import COMPRESSORS
from jdspec.compress.core import NM
from jdspec.compress.sparsegpt import SparseGPTParams, compress, prune_matrix
from jdspec.errors import SpecError
from tests.compress.test_obs import (
    ReferenceRule,
    correlated_layer,
    obs_reference,
    reconstruction_error,
)
from tests.helpers import tiny_llama


def _prune_lowest_per_row(
    W: torch.Tensor, scores: torch.Tensor, group: int, count: int
) -> torch.Tensor:
    """Zero the `count` lowest scores of each row's every `group` consecutive inputs."""
    rows, columns = W.shape
    order = scores.reshape(rows, columns // group, group).argsort(dim=-1, stable=True)
    mask = torch.zeros(rows, columns // group, group, dtype=torch.bool)
    mask.scatter_(-1, order[..., :count], True)
    return W.masked_fill(mask.reshape(rows, columns), 0)


def _baselines(W: torch.Tensor, X: torch.Tensor, structure: NM | None) -> dict[str, torch.Tensor]:
    """Magnitude (|W|) and Wanda (|W| * ||X_j||) masks per row, or per group of M for N:M."""
    group = W.shape[1] if structure is None else structure.group
    count = W.shape[1] // 2 if structure is None else structure.group - structure.kept
    return {
        "magnitude": _prune_lowest_per_row(W, W.abs(), group, count),
        "wanda": _prune_lowest_per_row(W, W.abs() * X.norm(dim=0), group, count),
    }


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("structure", [None, NM(2, 4)])
def test_reconstruction_beats_magnitude_and_wanda(seed: int, structure: NM | None) -> None:
    W, X, H = correlated_layer(seed)
    sparsity = None if structure is not None else 0.5
    pruned = prune_matrix(W, H, sparsity, structure, 128, 0.01)
    error = reconstruction_error(W, pruned, X)
    for name, baseline in _baselines(W, X, structure).items():
        assert error < 0.98 * reconstruction_error(W, baseline, X), name
    assert (pruned == 0).sum() == W.numel() // 2


@pytest.mark.parametrize("sparsity", [0.1, 0.37, 0.5, 0.9])
@pytest.mark.parametrize("block_size", [128, 40, 7])
def test_unstructured_sparsity_is_exact(sparsity: float, block_size: int) -> None:
    W, _, H = correlated_layer(seed=2, rows=30, inputs=96, tokens=512)
    pruned = prune_matrix(W, H, sparsity, None, block_size, 0.01)
    assert int((pruned == 0).sum()) == math.floor(sparsity * W.numel() + 0.5)


@pytest.mark.parametrize(("kept", "group"), [(2, 4), (1, 4), (4, 8), (3, 16)])
def test_nm_keeps_exactly_n_of_every_m(kept: int, group: int) -> None:
    W, _, H = correlated_layer(seed=3, rows=32, inputs=96, tokens=512)
    assert bool((W != 0).all())
    pruned = prune_matrix(W, H, None, NM(kept, group), 48, 0.01)
    nonzeros = (pruned != 0).reshape(32, -1, group).sum(dim=-1)
    assert bool((nonzeros == kept).all())


def _reference_rule(sparsity: float | None, structure: NM | None, block_size: int) -> ReferenceRule:
    """SparseGPT's mask choice, in numpy, for obs_reference: saliency w_ik^2 / [H_k^-1]_kk."""
    pruned: dict[int, np.ndarray] = {}
    width = block_size if structure is None else structure.group

    def rule(j: int, W: np.ndarray, denominators: np.ndarray) -> np.ndarray:
        if j % width == 0:
            block = W[:, j : j + width]
            saliency = block**2 / denominators[j : j + width]
            chosen = np.zeros(saliency.shape, dtype=bool)
            if structure is None:
                rows = W.shape[0]
                quota = math.floor(sparsity * rows * (j + block.shape[1]) + 0.5)
                quota -= math.floor(sparsity * rows * j + 0.5)
                chosen.ravel()[np.argsort(saliency, axis=None, kind="stable")[:quota]] = True
            else:
                order = np.argsort(saliency, axis=1, kind="stable")
                np.put_along_axis(chosen, order[:, : width - structure.kept], True, axis=1)
            for offset in range(block.shape[1]):
                pruned[j + offset] = chosen[:, offset]
        return np.where(pruned[j], 0.0, W[:, j])

    return rule


@pytest.mark.parametrize(
    ("sparsity", "structure", "block_size"),
    [(0.5, None, 128), (0.6, None, 24), (None, NM(2, 4), 16), (None, NM(1, 8), 64)],
)
def test_matches_textbook_reference(
    sparsity: float | None, structure: NM | None, block_size: int
) -> None:
    W, _, H = correlated_layer(seed=4, rows=16, inputs=64, tokens=512)
    pruned = prune_matrix(W, H, sparsity, structure, block_size, 0.01)
    rule = _reference_rule(sparsity, structure, block_size)
    expected = obs_reference(W.numpy(), H.numpy(), 0.01, rule)
    np.testing.assert_array_equal(pruned.numpy() == 0, expected == 0)
    np.testing.assert_allclose(pruned.numpy(), expected, rtol=0, atol=1e-9)


def test_zero_sparsity_changes_nothing() -> None:
    W, _, H = correlated_layer(seed=5, rows=8, inputs=32, tokens=256)
    assert torch.equal(prune_matrix(W, H, 0.0, None, 128, 0.01), W)


def test_dead_input_columns_are_zeroed() -> None:
    W, X, _ = correlated_layer(seed=6, rows=8, inputs=32, tokens=256)
    X[:, 5] = 0
    pruned = prune_matrix(W, 2 / 256 * X.T @ X, 0.25, None, 128, 0.01)
    assert bool(pruned.isfinite().all())
    assert bool((pruned[:, 5] == 0).all())
    assert int((pruned == 0).sum()) == 64  # the dead column counts toward the quota


def test_float32_hessian_computes_in_float32() -> None:
    W, _, H = correlated_layer(seed=7, rows=8, inputs=32, tokens=256)
    pruned = prune_matrix(W.bfloat16(), H.float(), 0.5, None, 128, 0.01)
    assert pruned.dtype == torch.float32
    assert int((pruned == 0).sum()) == 128


def test_params_validate_structure_and_blocks() -> None:
    assert SparseGPTParams(sparsity=0.5).family() == "sparsegpt"
    structured = SparseGPTParams.model_validate({"mask_structure": "2:4"})
    assert (structured.family(), structured.strength()) == ("sparsegpt N:4", 0.5)
    with pytest.raises(ValidationError, match="exactly one"):
        SparseGPTParams()
    with pytest.raises(ValidationError, match="multiple of M=3"):
        SparseGPTParams(mask_structure="2:3")
    assert SparseGPTParams(mask_structure="2:3", block_size=126).block_size == 126


def _calibration(vocabulary: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(vocabulary, (4, 24), generator=generator)


@pytest.mark.parametrize(
    "params",
    [SparseGPTParams(sparsity=0.37), SparseGPTParams(mask_structure="2:4", block_size=16)],
)
def test_registered_function_prunes_a_llama_exactly(params: SparseGPTParams) -> None:
    model = tiny_llama(vocab_size=64, seed=0)
    head = model.lm_head.weight.detach().clone()
    assert COMPRESSORS.get("sparsegpt").function is compress
    record = compress(model, params, _calibration(64, seed=1))
    assert torch.equal(model.lm_head.weight, head)
    assert len(record.matrices) == 2 * 7
    modules = dict(model.named_modules())
    for stats in record.matrices:
        weight = modules[stats.name].weight
        if params.sparsity is not None:
            assert stats.zeros == math.floor(params.sparsity * stats.numel + 0.5)
        else:
            nonzeros = (weight != 0).reshape(weight.shape[0], -1, 4).sum(dim=-1)
            assert bool((nonzeros == 2).all())
    assert record.method == "sparsegpt" and "ties" in record.notes


def test_nm_groups_not_dividing_inputs_raise_before_pruning() -> None:
    model = nn.ModuleDict({"layers": nn.ModuleList([nn.Linear(32, 8), nn.Linear(30, 8)])})
    dense = [linear.weight.detach().clone() for linear in model.layers]
    params = SparseGPTParams(mask_structure="2:4")
    with pytest.raises(SpecError, match=r"layers\.1.*30 input features.*M=4"):
        compress(model, params, torch.zeros(1, 8, dtype=torch.long))
    assert all(
        torch.equal(linear.weight, weight)
        for linear, weight in zip(model.layers, dense, strict=True)
    )
