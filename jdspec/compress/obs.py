"""The Optimal Brain Surgeon solver SparseGPT and GPTQ share, written once.

Both methods compress a Linear's weight W (rows, columns) to minimise ||W X^T - W' X^T||^2 over
calibration inputs X, whose Hessian is H = 2/N X^T X (columns, columns). They visit the columns
left to right; each column is rounded (pruned by SparseGPT, quantized by GPTQ) and its error is
spread over the columns not yet visited, which OBS says is the optimal correction. With U the
upper Cholesky factor of H^-1, that correction for column j is W[:, j:] -= err * U[j, j:] with
err = (w_j - rounded_j) / U[j, j] (GPTQ, Frantar et al. 2023, eq. 3 and section "Cholesky
reformulation"). Columns are processed in blocks: updates inside a block are immediate, updates
to later blocks are applied once per block as one matrix product ("lazy batch updates").

Imported lazily by the methods' registered functions, so importing torch at the top is fine.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

RoundColumn = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]
"""round_column(column, W_rest, U_diagonal_rest) -> the rounded column (rows,).

`column` is the absolute index of the column to round. W_rest (rows, width) holds the current
weights of that column and the rest of its block, every earlier column's correction applied;
U_diagonal_rest (width,) the matching diagonal of U. A rule that chooses a mask or a grid for
several columns at once does so on the call for the first of them, from W_rest.
"""


class CholeskyError(RuntimeError):
    """H + damping is not positive definite: the calibration inputs are degenerate."""


def inverse_hessian_cholesky(
    H: torch.Tensor, dampening_frac: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """U, the upper Cholesky factor of (H + lambda I)^-1, and the mask of dead input columns.

    A dead column (H_jj = 0: the input is always zero) gets H_jj = 1 so H stays invertible; the
    callers zero its weights, which never reach the output anyway. Then lambda =
    dampening_frac * mean(diag H) is added to the diagonal, as in SparseGPT and GPTQ. The work is
    in float64 if H is float64, else float32; H itself is not modified.
    """
    dtype = torch.float64 if H.dtype == torch.float64 else torch.float32
    H = H.to(dtype=dtype, copy=True)  # (columns, columns)
    diagonal = H.diagonal()
    dead = diagonal == 0
    diagonal[dead] = 1
    diagonal += dampening_frac * diagonal.mean()
    lower, info = torch.linalg.cholesky_ex(H)
    _check_factored(info, dampening_frac)
    del H, diagonal
    U, info = torch.linalg.cholesky_ex(torch.cholesky_inverse(lower), upper=True)
    _check_factored(info, dampening_frac)
    return U, dead


def _check_factored(info: torch.Tensor, dampening_frac: float) -> None:
    """Raise rather than retry with more damping: the damping is a spec field, hence a result."""
    if info.item() != 0:
        raise CholeskyError(
            f"the dampened Hessian is not positive definite (Cholesky failed at column "
            f"{info.item() - 1}); raise dampening_frac (now {dampening_frac}) or calibrate on "
            "more tokens"
        )


def sweep_columns(
    W: torch.Tensor, U: torch.Tensor, block_size: int, round_column: RoundColumn
) -> None:
    """Round every column of W in place, left to right, spreading each error by OBS.

    W (rows, columns) is a working copy in U's dtype; U (columns, columns) comes from
    inverse_hessian_cholesky. Each column ends exactly equal to what round_column returned.
    """
    columns = W.shape[1]
    for start in range(0, columns, block_size):
        end = min(start + block_size, columns)
        block = W[:, start:end].clone()  # (rows, width), corrected as the sweep goes
        U_block = U[start:end, start:end]  # (width, width)
        errors = torch.zeros_like(block)  # (rows, width), err of each column
        for index in range(end - start):
            rounded = round_column(start + index, block[:, index:], U_block.diagonal()[index:])
            error = (block[:, index] - rounded) / U_block[index, index]  # (rows,)
            block[:, index + 1 :] -= error.unsqueeze(1) * U_block[index, index + 1 :]
            block[:, index] = rounded
            errors[:, index] = error
        W[:, start:end] = block
        W[:, end:] -= errors @ U[start:end, end:]  # the lazy batch update of later blocks
