"""The shared OBS solver against a float64 textbook reference without Cholesky or blocks.

`correlated_layer` and `obs_reference` are imported by the SparseGPT and GPTQ tests too.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from jdspec.compress.obs import CholeskyError, inverse_hessian_cholesky, sweep_columns


def correlated_layer(
    seed: int, rows: int = 64, inputs: int = 128, tokens: int = 1024
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """W (rows, inputs), X (tokens, inputs) and H = 2/N X^T X, all float64.

    X = Z A mixes independent inputs Z through a random A, so inputs are correlated, and scales
    each input by a factor from 0.1 to 10 in random order, as LLM activations' outlier channels.
    """
    generator = torch.Generator().manual_seed(seed)
    Z = torch.randn(tokens, inputs, generator=generator, dtype=torch.float64)
    A = torch.randn(inputs, inputs, generator=generator, dtype=torch.float64) / inputs**0.5
    scales = torch.logspace(-1, 1, inputs, dtype=torch.float64)
    X = (Z @ A) * scales[torch.randperm(inputs, generator=generator)]
    W = torch.randn(rows, inputs, generator=generator, dtype=torch.float64)
    return W, X, 2 / tokens * X.T @ X


def reconstruction_error(W: torch.Tensor, compressed: torch.Tensor, X: torch.Tensor) -> float:
    """||W X^T - W' X^T||_F: what SparseGPT and GPTQ minimise layer by layer."""
    return float(((W - compressed.to(W.dtype)) @ X.T).norm())


ReferenceRule = Callable[[int, np.ndarray, np.ndarray], np.ndarray]


def obs_reference(
    W: np.ndarray, H: np.ndarray, dampening_frac: float, round_column: ReferenceRule
) -> np.ndarray:
    """Textbook OBS column by column with the explicit inverse Hessian of the columns left.

    round_column(j, W, denominators) sees the whole current W and, for every column k,
    [H_k^-1]_kk with H_k the dampened H restricted to columns k.. (the OBS denominator of k when
    its turn comes), and returns column j rounded. Column j's error moves the later columns by
    -err / [H_F^-1]_jj * [H_F^-1]_j,F (F = j..), then j is eliminated from H_F^-1.
    """
    W, H = W.copy(), H.copy()
    columns = H.shape[0]
    dead = np.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    H += dampening_frac * np.mean(np.diag(H)) * np.eye(columns)
    denominators = np.array([np.linalg.inv(H[k:, k:])[0, 0] for k in range(columns)])
    inverse = np.linalg.inv(H)
    for j in range(columns):
        rounded = round_column(j, W, denominators)
        error = (W[:, j] - rounded) / inverse[j, j]
        W[:, j + 1 :] -= np.outer(error, inverse[j, j + 1 :])
        W[:, j] = rounded
        inverse -= np.outer(inverse[:, j], inverse[j, :]) / inverse[j, j]
    return W


def test_cholesky_factor_inverts_dampened_hessian() -> None:
    _, _, H = correlated_layer(seed=0)
    U, dead = inverse_hessian_cholesky(H, dampening_frac=0.01)
    dampened = H + 0.01 * H.diagonal().mean() * torch.eye(H.shape[0], dtype=torch.float64)
    expected = torch.linalg.inv(dampened)
    assert U.dtype == torch.float64
    assert torch.equal(U, U.triu())
    assert float((U.T @ U - expected).abs().max()) < 1e-10 * float(expected.abs().max())
    assert not bool(dead.any())


def test_cholesky_leaves_hessian_alone_and_works_in_float32() -> None:
    _, _, H = correlated_layer(seed=1, inputs=32)
    before = H.float().clone()
    U, _ = inverse_hessian_cholesky(before, dampening_frac=0.1)
    assert torch.equal(before, H.float())
    assert U.dtype == torch.float32


def test_dead_columns_get_unit_diagonal_before_damping() -> None:
    _, X, _ = correlated_layer(seed=2, inputs=16, tokens=256)
    X[:, [3, 11]] = 0  # two inputs that are always zero
    H = 2 / X.shape[0] * X.T @ X
    U, dead = inverse_hessian_cholesky(H, dampening_frac=0.01)
    assert dead.nonzero().flatten().tolist() == [3, 11]
    repaired = H.clone()
    repaired[[3, 11], [3, 11]] = 1
    repaired += 0.01 * repaired.diagonal().mean() * torch.eye(16, dtype=torch.float64)
    assert bool(U.isfinite().all())
    torch.testing.assert_close(U.T @ U, torch.linalg.inv(repaired), rtol=1e-10, atol=1e-12)


def test_indefinite_hessian_raises_naming_dampening() -> None:
    H = torch.diag(torch.tensor([1.0, -4.0, 2.0], dtype=torch.float64))
    with pytest.raises(CholeskyError, match=r"column 1.*dampening_frac \(now 0.0\)"):
        inverse_hessian_cholesky(H, dampening_frac=0.0)


def _round_to_quarters(column: int, W_rest: torch.Tensor, U_diagonal: torch.Tensor) -> torch.Tensor:
    return torch.round(W_rest[:, 0] * 4) / 4


@pytest.mark.parametrize("block_size", [1, 5, 16, 48, 200])
def test_sweep_matches_textbook_obs_for_any_block_size(block_size: int) -> None:
    W, _, H = correlated_layer(seed=3, rows=24, inputs=48, tokens=512)
    U, _ = inverse_hessian_cholesky(H, dampening_frac=0.01)
    swept = W.clone()
    sweep_columns(swept, U, block_size, _round_to_quarters)
    expected = obs_reference(
        W.numpy(), H.numpy(), 0.01, lambda j, current, _: np.round(current[:, j] * 4) / 4
    )
    np.testing.assert_allclose(swept.numpy(), expected, rtol=0, atol=1e-9)
    assert torch.equal(swept, torch.round(swept * 4) / 4)  # every column ends on the grid


def test_sweep_hands_the_rule_current_weights_and_diagonal() -> None:
    W, _, H = correlated_layer(seed=4, rows=8, inputs=20, tokens=256)
    U, _ = inverse_hessian_cholesky(H, dampening_frac=0.01)
    seen: list[tuple[int, int, torch.Tensor]] = []

    def record(column: int, W_rest: torch.Tensor, U_diagonal: torch.Tensor) -> torch.Tensor:
        seen.append((column, W_rest.shape[1], U_diagonal.clone()))
        return _round_to_quarters(column, W_rest, U_diagonal)

    sweep_columns(W.clone(), U, 8, record)
    assert [(column, width) for column, width, _ in seen] == [
        (column, 8 - column % 8 if column < 16 else 20 - column) for column in range(20)
    ]
    for column, _, diagonal in seen:
        block_end = min(column - column % 8 + 8, 20)
        assert torch.equal(diagonal, U.diagonal()[column:block_end])


def test_sweep_that_keeps_every_weight_changes_nothing() -> None:
    W, _, H = correlated_layer(seed=5, rows=8, inputs=32, tokens=256)
    U, _ = inverse_hessian_cholesky(H, dampening_frac=0.01)
    swept = W.clone()
    sweep_columns(swept, U, 7, lambda column, W_rest, _: W_rest[:, 0].clone())
    assert torch.equal(swept, W)
