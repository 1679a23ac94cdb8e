"""Low rank against numpy's float64 truncated SVD, and energy mode on hand-made spectra."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from torch import nn

from jdspec.compress import apply_compressor
from jdspec.compress.lowrank import LowRankParams, compress
from tests.helpers import tiny_llama


def _targets(model: nn.Module) -> dict[str, nn.Linear]:
    """The block Linears in module order: the order find_targets returns them."""
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and ".layers." in name
    }


def _numpy_truncated(weight: np.ndarray, rank: int) -> np.ndarray:
    U, S, Vh = np.linalg.svd(weight.astype(np.float64), full_matrices=False)
    return (U[:, :rank] * S[:rank]) @ Vh[:rank]


def _float32_rank(weight: np.ndarray) -> int:
    """Rank up to float32 rounding: singular values above 1e-5 of the largest."""
    singular_values = np.linalg.svd(weight, compute_uv=False)
    return int((singular_values > 1e-5 * singular_values[0]).sum())


def _model_with_weight(weight: torch.Tensor) -> nn.Module:
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias=False, dtype=weight.dtype)
    with torch.no_grad():
        linear.weight.copy_(weight)
    return nn.ModuleDict({"layers": nn.ModuleList([linear])})


@pytest.mark.parametrize("rank", [1, 3, 16, 31])
def test_float64_matches_numpy_truncated_svd(rank: int) -> None:
    model = tiny_llama(vocab_size=50, seed=1).double()
    before = {
        name: linear.weight.detach().numpy().copy() for name, linear in _targets(model).items()
    }
    compress(model, LowRankParams(rank=rank), None)
    for name, linear in _targets(model).items():
        after = linear.weight.detach().numpy()
        np.testing.assert_allclose(after, _numpy_truncated(before[name], rank), rtol=0, atol=1e-10)
        assert np.linalg.matrix_rank(after) == min(rank, *after.shape)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_same_linear_shape_and_dtype(dtype: torch.dtype) -> None:
    model = tiny_llama(vocab_size=50, seed=2).to(dtype)
    linears = {name: (linear, linear.weight.shape) for name, linear in _targets(model).items()}
    compress(model, LowRankParams(rank=4), None)
    for name, linear in _targets(model).items():
        assert linear is linears[name][0]
        assert linear.weight.shape == linears[name][1]
        assert linear.weight.dtype == dtype


def test_rank_above_matrix_size_is_capped_and_exact() -> None:
    generator = torch.Generator().manual_seed(3)
    weight = torch.randn(6, 4, generator=generator, dtype=torch.float64)
    model = _model_with_weight(weight)
    record = compress(model, LowRankParams(rank=100), None)
    np.testing.assert_allclose(model.layers[0].weight.detach().numpy(), weight.numpy(), atol=1e-12)
    assert record.matrices[0].rank == 4


def _hand_made(singular_values: list[float], rows: int, columns: int) -> torch.Tensor:
    """W = U diag(s) V^T with random orthonormal U (rows, k) and V (columns, k)."""
    generator = torch.Generator().manual_seed(4)
    count = len(singular_values)
    U, _ = torch.linalg.qr(torch.randn(rows, count, generator=generator, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(columns, count, generator=generator, dtype=torch.float64))
    return (U * torch.tensor(singular_values, dtype=torch.float64)) @ V.T


@pytest.mark.parametrize(
    ("energy", "expected_rank"),
    # s = [4, 2, 1, 0.5]: s^2 = [16, 4, 1, 0.25], cumulative share 16/21.25, 20/21.25,
    # 21/21.25, 1. The singular values are distinct, so every truncation is unique.
    [
        (0.5, 1),
        (16 / 21.25, 1),
        (0.76, 2),
        (0.9, 2),
        (20 / 21.25, 2),
        (0.95, 3),
        (21 / 21.25, 3),
        (0.995, 4),
        (1.0, 4),
    ],
)
def test_energy_picks_smallest_rank_reaching_share(energy: float, expected_rank: int) -> None:
    weight = _hand_made([4.0, 2.0, 1.0, 0.5], rows=8, columns=6)
    model = _model_with_weight(weight)
    record = compress(model, LowRankParams(energy=energy), None)
    assert record.matrices[0].rank == expected_rank
    after = model.layers[0].weight.detach().numpy()
    np.testing.assert_allclose(
        after, _numpy_truncated(weight.numpy(), expected_rank), rtol=0, atol=1e-12
    )
    assert np.linalg.matrix_rank(after) == expected_rank


def test_tied_singular_values_keep_what_is_unique() -> None:
    """s = [4, 2, 1, 1] cut at rank 3: which unit vector of the tied pair LAPACK keeps depends
    on the CPU's code path, so only what every valid truncation shares is asserted: the rank,
    the kept spectrum, an error equal to the discarded energy, and the span of the top two."""
    weight = _hand_made([4.0, 2.0, 1.0, 1.0], rows=8, columns=6)
    model = _model_with_weight(weight)
    record = compress(model, LowRankParams(energy=0.95), None)  # 21/22 reaches 0.95 at rank 3
    assert record.matrices[0].rank == 3
    after = model.layers[0].weight.detach().numpy()
    np.testing.assert_allclose(np.linalg.svd(after, compute_uv=False)[:3], [4, 2, 1], atol=1e-12)
    assert np.linalg.matrix_rank(after) == 3
    residual = weight.numpy() - after
    # Eckart-Young: the error of a best rank-3 approximation is the discarded s_4 = 1.
    assert np.linalg.norm(residual) == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(np.linalg.svd(residual, compute_uv=False)[0], 1.0, atol=1e-12)
    # The part above the tie is unique: projecting onto W's top-2 left singular vectors gives
    # the rank-2 truncation, whichever tied vector was kept.
    U = np.linalg.svd(weight.numpy(), full_matrices=False)[0][:, :2]
    np.testing.assert_allclose(
        U @ (U.T @ after), _numpy_truncated(weight.numpy(), 2), rtol=0, atol=1e-12
    )


def test_embeddings_head_and_norms_untouched() -> None:
    model = tiny_llama(vocab_size=50, seed=5)
    untouched = {
        name: parameter.detach().clone()
        for name, parameter in model.named_parameters()
        if "proj" not in name
    }
    assert any("embed_tokens" in name for name in untouched)
    assert any("lm_head" in name for name in untouched)
    compress(model, LowRankParams(rank=2), None)
    for name, parameter in model.named_parameters():
        if name in untouched:
            assert torch.equal(parameter, untouched[name]), name
        else:
            assert _float32_rank(parameter.detach().double().numpy()) == 2, name


def test_record_ranks_and_zeros() -> None:
    model = tiny_llama(vocab_size=50, seed=6)
    record = apply_compressor(model, LowRankParams(rank=8, ignore=("re:.*down_proj",)))
    targets = {name: linear for name, linear in _targets(model).items() if "down_proj" not in name}
    assert record.method == "lowrank"
    assert [stats.name for stats in record.matrices] == list(targets)
    for stats in record.matrices:
        weight = targets[stats.name].weight
        assert stats.rank == 8
        assert stats.numel == weight.numel()
        assert stats.zeros == int((weight == 0).sum())
        assert stats.bits is None


def test_energy_record_ranks_differ_per_matrix() -> None:
    model = nn.ModuleDict(
        {
            "layers": nn.ModuleList(
                [
                    _model_with_weight(_hand_made([4.0, 2.0, 1.0, 1.0], 8, 6)).layers[0],
                    _model_with_weight(_hand_made([1.0, 1.0, 1.0, 1.0], 8, 6)).layers[0],
                ]
            )
        }
    )
    record = compress(model, LowRankParams(energy=0.9), None)
    assert [stats.rank for stats in record.matrices] == [2, 4]


def test_params_strength_and_family() -> None:
    by_rank = LowRankParams.model_validate({"method": "lowrank", "rank": 64})
    by_energy = LowRankParams.model_validate({"method": "lowrank", "energy": 0.9})
    assert (by_rank.strength(), by_rank.strength_name(), by_rank.family()) == (
        64.0,
        "rank",
        "lowrank",
    )
    assert (by_energy.strength(), by_energy.strength_name(), by_energy.family()) == (
        0.9,
        "energy",
        "lowrank energy",
    )


@pytest.mark.parametrize(
    "fields",
    [{}, {"rank": 4, "energy": 0.5}, {"rank": 0}, {"energy": 0.0}, {"energy": 1.5}, {"bits": 4}],
)
def test_invalid_params_rejected(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        LowRankParams.model_validate({"method": "lowrank", **fields})
