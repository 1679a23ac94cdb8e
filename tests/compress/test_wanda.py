"""Wanda against independent numpy references of |W| * ||X||, per row and per group of M."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from torch import nn

from jdspec.compress import COMPRESSORS
from jdspec.compress.core import NM, find_targets
from jdspec.compress.magnitude import MagnitudeParams
from jdspec.compress.magnitude import compress as magnitude_compress
from jdspec.compress.wanda import WandaParams, compress, prune_matrix
from jdspec.errors import SpecError
from tests.helpers import tiny_llama

VOCABULARY = 100


def _reference_row(weight: np.ndarray, column_norms: np.ndarray, sparsity: float) -> np.ndarray:
    """Zero the first k of a stable ascending argsort of |W| * sqrt(norms) in each row."""
    scores = np.abs(weight.astype(np.float64)) * np.sqrt(column_norms.astype(np.float64))
    count = math.floor(sparsity * weight.shape[1] + 0.5)
    pruned = np.zeros(weight.shape, dtype=bool)
    np.put_along_axis(pruned, np.argsort(scores, axis=1, kind="stable")[:, :count], True, axis=1)
    return np.where(pruned, 0.0, weight)


def _reference_nm(
    weight: np.ndarray, column_norms: np.ndarray, kept: int, group: int
) -> np.ndarray:
    """Keep the first `kept` of a stable descending argsort of the scores in each group."""
    rows, columns = weight.shape
    scores = np.abs(weight.astype(np.float64)) * np.sqrt(column_norms.astype(np.float64))
    scores = scores.reshape(rows, columns // group, group)
    pruned = np.zeros(scores.shape, dtype=bool)
    order = np.argsort(-scores, axis=-1, kind="stable")
    np.put_along_axis(pruned, order[..., kept:], True, axis=-1)
    return np.where(pruned.reshape(rows, columns), 0.0, weight)


def _tied_case(seed: int, rows: int = 24, columns: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights on a 1/4 grid without zeros, squared-integer norms: exact scores, with ties."""
    generator = torch.Generator().manual_seed(seed)
    levels = torch.randint(1, 9, (rows, columns), generator=generator).float()
    signs = torch.randint(0, 2, (rows, columns), generator=generator).float() * 2 - 1
    norms = torch.randint(1, 4, (columns,), generator=generator).float() ** 2
    return levels * signs / 4, norms


def test_hand_worked_row() -> None:
    weight = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    # ||X|| = (4, 2, 1, 1): scores (4, 4, 3, 4); prune the 3, then the first tied 4
    prune_matrix(weight, torch.tensor([16.0, 4.0, 1.0, 1.0]), 0.5, None)
    assert torch.equal(weight, torch.tensor([[0.0, 2.0, 0.0, 4.0]]))


@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.37, 0.5, 0.9, 0.999])
@pytest.mark.parametrize("seed", [0, 1])
def test_rows_match_reference_with_exact_count(sparsity: float, seed: int) -> None:
    weight, norms = _tied_case(seed)
    expected = _reference_row(weight.numpy(), norms.numpy(), sparsity)
    prune_matrix(weight, norms, sparsity, None)
    np.testing.assert_array_equal(weight.numpy(), expected)
    zeros_per_row = (weight == 0).sum(dim=1)
    assert bool((zeros_per_row == math.floor(sparsity * 48 + 0.5)).all())


def test_untied_random_float64_matches_reference() -> None:
    generator = torch.Generator().manual_seed(5)
    weight = torch.randn(32, 64, generator=generator, dtype=torch.float64)
    norms = torch.rand(64, generator=generator, dtype=torch.float64) * 100
    expected = _reference_row(weight.numpy(), norms.numpy(), 0.6)
    prune_matrix(weight, norms.float(), 0.6, None)
    np.testing.assert_array_equal(weight.numpy(), expected)


@pytest.mark.parametrize(("kept", "group"), [(2, 4), (1, 8), (7, 8), (8, 8), (3, 16)])
def test_nm_keeps_exactly_n_highest_scores_of_every_m(kept: int, group: int) -> None:
    weight, norms = _tied_case(seed=2)
    expected = _reference_nm(weight.numpy(), norms.numpy(), kept, group)
    prune_matrix(weight, norms, None, NM(kept, group))
    np.testing.assert_array_equal(weight.numpy(), expected)
    nonzeros = (weight != 0).reshape(24, -1, group).sum(dim=-1)
    assert bool((nonzeros == kept).all())


def test_bfloat16_weights_keep_their_dtype() -> None:
    weight, norms = _tied_case(seed=3)
    expected = _reference_row(weight.numpy(), norms.numpy(), 0.5)
    weight = weight.bfloat16()  # the 1/4 grid is exact in bfloat16
    prune_matrix(weight, norms, 0.5, None)
    assert weight.dtype == torch.bfloat16
    np.testing.assert_array_equal(weight.float().numpy(), expected)


def _layerwise_reference(model: nn.Module, calibration: torch.Tensor, sparsity: float) -> None:
    """Prune block by block, each from hooks on a whole-model forward of the model so far."""
    for block in model.model.layers:
        linears = {name: m for name, m in block.named_modules() if isinstance(m, nn.Linear)}
        inputs: dict[str, list[torch.Tensor]] = {name: [] for name in linears}
        handles = [
            linear.register_forward_hook(
                lambda module, args, output, seen=inputs[name]: seen.append(args[0])
            )
            for name, linear in linears.items()
        ]
        with torch.no_grad():
            model(input_ids=calibration, use_cache=False)  # one batch: one call per Linear
        for handle in handles:
            handle.remove()
        for name, linear in linears.items():
            (layer_input,) = inputs[name]
            norms = layer_input.reshape(-1, linear.in_features).square().sum(dim=0)
            pruned = _reference_row(linear.weight.detach().numpy(), norms.numpy(), sparsity)
            linear.weight.data = torch.from_numpy(pruned)


def test_end_to_end_matches_layerwise_reference() -> None:
    model = tiny_llama(VOCABULARY).double()
    reference = copy.deepcopy(model)
    calibration = torch.randint(0, VOCABULARY, (6, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        record = compress(model, WandaParams(sparsity=0.5), calibration)
    _layerwise_reference(reference, calibration, 0.5)
    for (name, linear), expected in zip(
        find_targets(model, ("Linear",), ()).items(),
        find_targets(reference, ("Linear",), ()).values(),
        strict=True,
    ):
        assert torch.equal(linear.weight, expected.weight), name
    assert record.method == "wanda" and record.sparsity == 0.5
    assert "ties" in record.notes
    assert torch.equal(model.lm_head.weight, reference.lm_head.weight)


def test_groups_not_dividing_inputs_raise_before_calibrating() -> None:
    model = tiny_llama(VOCABULARY)
    dense = copy.deepcopy(model.state_dict())
    with pytest.raises(SpecError, match=r"32 input features.*M=3"):
        compress(model, WandaParams(mask_structure="1:3"), None)
    assert all(torch.equal(tensor, dense[name]) for name, tensor in model.state_dict().items())


def test_beats_magnitude_when_input_scales_differ() -> None:
    """Columns whose inputs are 100x larger matter more; |W| alone cannot see that."""
    generator = torch.Generator().manual_seed(7)
    W = torch.randn(64, 128, generator=generator, dtype=torch.float64)  # (out, in)
    scales = torch.logspace(0, 2, 128, dtype=torch.float64)[
        torch.randperm(128, generator=generator)
    ]
    X = torch.randn(512, 128, generator=generator, dtype=torch.float64) * scales  # (tokens, in)
    wanda = W.clone()
    prune_matrix(wanda, X.square().sum(dim=0).float(), 0.5, None)
    layer = nn.Linear(128, 64, bias=False, dtype=torch.float64)
    layer.weight.data = W.clone()
    with torch.no_grad():
        magnitude_compress(
            nn.ModuleDict({"layers": nn.ModuleList([layer])}), MagnitudeParams(sparsity=0.5), None
        )
    error = {
        name: float(torch.linalg.norm(X @ W.T - X @ pruned.T))
        for name, pruned in (("wanda", wanda), ("magnitude", layer.weight.detach()))
    }
    assert error["wanda"] < 0.8 * error["magnitude"]


def test_params_and_registration() -> None:
    params = WandaParams.model_validate(
        {"method": "wanda", "mask_structure": "2:4", "calibration": {"n_samples": 16}}
    )
    assert params.strength() == 0.5 and params.family() == "wanda N:4"
    assert params.calibration.n_samples == 16 and params.calibration.revision == "0.9.0"
    assert WandaParams(sparsity=0.3).family() == "wanda"
    assert WandaParams(sparsity=0.3).strength_name() == "sparsity"
    with pytest.raises(ValidationError, match="exactly one"):
        WandaParams(sparsity=0.5, mask_structure="2:4")
    with pytest.raises(ValidationError, match="exactly one"):
        WandaParams()
    compressor = COMPRESSORS.get("wanda")
    assert compressor.needs_calibration
    assert compressor.strength_fields == ("sparsity", "mask_structure")
