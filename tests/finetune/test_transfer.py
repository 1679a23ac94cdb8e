"""Transfer modes on a tiny random BERT: what is pruned, what is held, and what training does."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

from jdspec.compress.magnitude import MagnitudeParams
from jdspec.compress.none import NoneParams
from jdspec.compress.wanda import WandaParams
from jdspec.errors import JobError
from jdspec.finetune.train import load_encoder, train
from jdspec.finetune.transfer import HeldWeights, check_held, hold, prepare_transfer
from jdspec.tasks.finetune import TrainingRun
from tests.helpers import tiny_task

CPU = torch.device("cpu")
ENCODER_LINEAR = re.compile(r"bert\.encoder\.layer\.\d+\.[\w.]+")
TASK = tiny_task("classification")


def _model(folder: Path) -> nn.Module:
    return load_encoder(str(folder), None, TASK, seed=1, device=CPU)[0]


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: parameter.detach().clone() for name, parameter in model.named_parameters()}


def _run(mode: str) -> TrainingRun:
    return TrainingRun(
        learning_rate=1e-3,
        epochs=2,
        batch_size=8,
        max_length=32,
        warmup_ratio=0.1,
        weight_decay=0.0,
        seed=41,
        transfer=mode,
    )


def _masks(held: HeldWeights) -> dict[str, torch.Tensor]:
    return {weight.name: weight.mask for weight in held.weights}


def _train(folder: Path, mode: str, params: MagnitudeParams) -> tuple[nn.Module, HeldWeights]:
    model, tokenizer = load_encoder(str(folder), None, TASK, seed=1, device=CPU)
    held, _ = prepare_transfer(model, mode, params)
    train(model, tokenizer, TASK, TASK.train, TASK.test, _run(mode), held, None, 16, None)
    return model, held


@pytest.mark.parametrize(
    "params",
    [MagnitudeParams(sparsity=0.5), MagnitudeParams(mask_structure="2:4")],
    ids=["unstructured", "2:4"],
)
def test_sparse_zeroes_masks_and_holds_zeros(tiny_bert_dir: Path, params: MagnitudeParams) -> None:
    model = _model(tiny_bert_dir)
    pretrained = _weights(model)
    held, record = prepare_transfer(model, "sparse", params)
    weights = dict(model.named_parameters())
    assert held.mode == "sparse" and len(held.weights) == 12  # 6 Linears in each of 2 blocks
    for entry in held.weights:
        assert entry.parameter is weights[entry.name]
        assert torch.equal(entry.values, torch.zeros(int(entry.mask.sum())))
        assert bool((entry.parameter[entry.mask] == 0).all())
        assert torch.equal(entry.parameter[~entry.mask], pretrained[entry.name][~entry.mask])
    assert record.sparsity == 0.5
    assert [f"{stats.name}.weight" for stats in record.matrices] == list(_masks(held))
    assert "transfer sparse" in record.notes and "ties" in record.notes


def test_dense_frozen_changes_nothing_and_holds_pretrained_values(tiny_bert_dir: Path) -> None:
    model = _model(tiny_bert_dir)
    pretrained = _weights(model)
    held, record = prepare_transfer(model, "dense_frozen", MagnitudeParams(sparsity=0.3))
    for name, weight in _weights(model).items():
        assert torch.equal(weight, pretrained[name]), name
    for entry in held.weights:
        assert torch.equal(entry.values, pretrained[entry.name][entry.mask])
    # the record measures the masks, though the weights keep no zero
    assert abs(record.sparsity - 0.3) < 1e-3


def test_sparse_to_dense_prunes_and_holds_nothing(tiny_bert_dir: Path) -> None:
    model = _model(tiny_bert_dir)
    held, record = prepare_transfer(model, "sparse_to_dense", MagnitudeParams(sparsity=0.4))
    assert held.weights == ()
    weights = dict(model.named_parameters())
    for stats in record.matrices:
        assert int((weights[f"{stats.name}.weight"] == 0).sum()) == stats.zeros


def test_dense_baseline_holds_nothing(tiny_bert_dir: Path) -> None:
    model = _model(tiny_bert_dir)
    pretrained = _weights(model)
    held, record = prepare_transfer(model, "dense", NoneParams())
    assert held.weights == () and record.sparsity == 0.0 and record.method == "none"
    assert all(torch.equal(w, pretrained[n]) for n, w in _weights(model).items())


@pytest.mark.parametrize(
    ("mode", "params", "message"),
    [
        ("sparse", NoneParams(), "needs a pruned variant"),
        ("dense", MagnitudeParams(sparsity=0.5), "unpruned baseline"),
        ("sparse", WandaParams(sparsity=0.5), "transfer modes need magnitude masks"),
    ],
)
def test_mismatched_mode_and_method_raise(
    tiny_bert_dir: Path, mode: str, params: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        prepare_transfer(_model(tiny_bert_dir), mode, params)


@pytest.mark.parametrize("mode", ["sparse", "dense_frozen", "sparse_to_dense"])
def test_head_embeddings_and_layernorms_are_never_masked(tiny_bert_dir: Path, mode: str) -> None:
    model = _model(tiny_bert_dir)
    held, record = prepare_transfer(model, mode, MagnitudeParams(sparsity=0.5, scope="global"))
    modules = dict(model.named_modules())
    names = [stats.name for stats in record.matrices] + [
        w.name[: -len(".weight")] for w in held.weights
    ]
    assert len(record.matrices) == 12
    for name in names:
        assert ENCODER_LINEAR.fullmatch(name) and isinstance(modules[name], nn.Linear), name
        assert not any(part in name for part in ("classifier", "embeddings", "LayerNorm", "pooler"))


def test_hold_restores_held_values_bit_for_bit(tiny_bert_dir: Path) -> None:
    model = _model(tiny_bert_dir)
    held, _ = prepare_transfer(model, "dense_frozen", MagnitudeParams(sparsity=0.5))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for entry in held.weights:
            entry.parameter.add_(torch.randn(entry.parameter.shape, generator=generator))
    moved = _weights(model)
    with pytest.raises(JobError, match=re.escape(held.weights[0].name)):
        check_held(held)
    hold(held)
    check_held(held)
    for entry in held.weights:
        assert torch.equal(entry.parameter[entry.mask], entry.values)
        assert torch.equal(entry.parameter[~entry.mask], moved[entry.name][~entry.mask])


def test_sparse_training_keeps_pruned_weights_zero(tiny_bert_dir: Path) -> None:
    model, held = _train(tiny_bert_dir, "sparse", MagnitudeParams(sparsity=0.5))
    untrained = _model(tiny_bert_dir)
    prepare_transfer(untrained, "sparse", MagnitudeParams(sparsity=0.5))
    pruned = _weights(untrained)
    for entry in held.weights:
        weight = entry.parameter.detach()
        assert bool((weight[entry.mask] == 0.0).all()), entry.name
        assert _changed_share(weight[~entry.mask], pruned[entry.name][~entry.mask]) > 0.95


def test_dense_frozen_training_keeps_frozen_weights_bit_for_bit(tiny_bert_dir: Path) -> None:
    model, held = _train(tiny_bert_dir, "dense_frozen", MagnitudeParams(mask_structure="2:4"))
    pretrained = _weights(_model(tiny_bert_dir))
    for entry in held.weights:
        weight = entry.parameter.detach()
        assert torch.equal(weight[entry.mask], pretrained[entry.name][entry.mask]), entry.name
        assert _changed_share(weight[~entry.mask], pretrained[entry.name][~entry.mask]) > 0.95


def test_sparse_to_dense_training_regrows_pruned_weights(tiny_bert_dir: Path) -> None:
    params = MagnitudeParams(sparsity=0.5)
    masks = _masks(prepare_transfer(_model(tiny_bert_dir), "sparse", params)[0])
    model, held = _train(tiny_bert_dir, "sparse_to_dense", params)
    assert held.weights == ()
    weights = dict(model.named_parameters())
    for name, mask in masks.items():
        assert _changed_share(weights[name].detach()[mask], torch.zeros(int(mask.sum()))) > 0.5


def _changed_share(after: torch.Tensor, before: torch.Tensor) -> float:
    return float((after != before).float().mean())
