"""Fine-tuning a tiny random BERT: heads, evaluation order, schedule, determinism and resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from jdspec.compress.magnitude import MagnitudeParams
from jdspec.compress.none import NoneParams
from jdspec.data.finetune_data import TaskData
from jdspec.finetune.train import (
    PassScores,
    epoch_order,
    evaluate,
    linear_schedule,
    load_encoder,
    train,
    warmup_steps,
)
from jdspec.finetune.transfer import HeldWeights, prepare_transfer
from jdspec.tasks.finetune import TrainingRun
from tests.helpers import HEAD_METRICS, tiny_task

CPU = torch.device("cpu")
CLASSIFICATION = tiny_task("classification")


def _run(epochs: int = 2, seed: int = 41, transfer: str = "sparse") -> TrainingRun:
    return TrainingRun(
        learning_rate=1e-3,
        epochs=epochs,
        batch_size=8,
        max_length=32,
        warmup_ratio=0.1,
        weight_decay=0.01,
        seed=seed,
        transfer=transfer,
    )


def _evaluate(
    model: torch.nn.Module, tokenizer: object, data: TaskData, batch_size: int
) -> PassScores:
    return evaluate(model, tokenizer, data, data.test, 32, batch_size, None)


class Killed(Exception):
    """Raised from on_step to simulate a cell killed partway through an epoch."""


def test_load_encoder_draws_the_head_from_the_seed(tiny_bert_dir: Path) -> None:
    heads = [
        load_encoder(str(tiny_bert_dir), None, CLASSIFICATION, seed, CPU)[0].classifier.weight
        for seed in (1, 1, 2)
    ]
    assert torch.equal(heads[0], heads[1]) and not torch.equal(heads[0], heads[2])
    model, _ = load_encoder(str(tiny_bert_dir), None, tiny_task("regression"), 1, CPU)
    assert not model.training and model.config.problem_type == "regression"
    assert model.classifier.out_features == 1
    assert all(parameter.dtype == torch.float32 for parameter in model.parameters())


@pytest.mark.parametrize("head", ["classification", "regression", "multiple_choice"])
def test_evaluate_returns_input_order_whatever_the_batching(tiny_bert_dir: Path, head: str) -> None:
    data = tiny_task(head)
    model, tokenizer = load_encoder(str(tiny_bert_dir), None, data, 3, CPU)
    whole = _evaluate(model, tokenizer, data, batch_size=32)
    single = _evaluate(model, tokenizer, data, batch_size=1)
    reversed_data = TaskData(**{**data.__dict__, "test": data.test[::-1]})
    backwards = _evaluate(model, tokenizer, reversed_data, batch_size=5)
    assert torch.allclose(torch.tensor(whole.scores), torch.tensor(single.scores), atol=1e-5)
    assert torch.allclose(
        torch.tensor(whole.scores), torch.tensor(backwards.scores[::-1]), atol=1e-5
    )
    assert list(whole.metrics) == list(HEAD_METRICS[head])
    width = {"classification": 2, "regression": 1, "multiple_choice": 3}[head]
    assert torch.tensor(whole.scores).shape == (len(data.test), width)
    assert abs(whole.loss - _reference_loss(data, whole.scores)) < 1e-5


def _reference_loss(data: TaskData, scores: tuple[tuple[float, ...], ...]) -> float:
    """Mean cross-entropy (squared error for regression) in float64 from the returned logits."""
    logits = torch.tensor(scores, dtype=torch.float64)
    labels = torch.tensor([example.label for example in data.test], dtype=torch.float64)
    if data.head == "regression":
        return float(((logits[:, 0] - labels) ** 2).mean())
    return float(F.cross_entropy(logits, labels.long()))


@pytest.mark.parametrize("head", ["regression", "multiple_choice"])
def test_regression_and_multiple_choice_train(tiny_bert_dir: Path, head: str) -> None:
    data = tiny_task(head)
    model, tokenizer = load_encoder(str(tiny_bert_dir), None, data, 3, CPU)
    before = _evaluate(model, tokenizer, data, batch_size=16)
    held, _ = prepare_transfer(model, "dense", NoneParams())
    outcome = train(
        model,
        tokenizer,
        data,
        data.train,
        data.test,
        _run(3, transfer="dense"),
        held,
        None,
        16,
        None,
    )
    assert len(outcome.epochs) == 3 and outcome.final is outcome.epochs[-1]
    final = outcome.final
    assert list(final.metrics) == list(HEAD_METRICS[head]) and len(final.predictions) == len(
        data.test
    )
    assert final.loss != before.loss
    if head == "multiple_choice":
        assert set(final.predictions) <= {0.0, 1.0, 2.0}
        assert torch.tensor(final.scores).shape == (len(data.test), 3)
    else:
        assert final.predictions == tuple(row[0] for row in final.scores)


def test_training_is_seeded_and_reports_every_step(tiny_bert_dir: Path) -> None:
    outcomes, steps = [], []
    for seed in (41, 41, 42):
        model, tokenizer = load_encoder(str(tiny_bert_dir), None, CLASSIFICATION, 1, CPU)
        on_step = (lambda done, total: steps.append((done, total))) if not outcomes else None
        outcomes.append(
            train(
                model,
                tokenizer,
                CLASSIFICATION,
                CLASSIFICATION.train,
                CLASSIFICATION.test,
                _run(seed=seed, transfer="dense"),
                HeldWeights("dense"),
                None,
                16,
                None,
                on_step,
            )
        )
    assert outcomes[0] == outcomes[1] and outcomes[0] != outcomes[2]
    assert steps == [(done, 6) for done in range(1, 7)]  # 24 examples / 8 per step * 2 epochs


def test_killed_run_resumes_to_the_uninterrupted_result(
    tiny_bert_dir: Path, tmp_path: Path
) -> None:
    """Killed in epoch 2 of 3 (after epoch 1's checkpoint), then resumed in a fresh process's way:
    a new model, pruned again, trained from the checkpoint."""
    run, params = _run(epochs=3), MagnitudeParams(sparsity=0.5)
    checkpoint = tmp_path / "cell" / "training.pt"

    def attempt(
        on_step: object = None, path: Path | None = checkpoint
    ) -> tuple[torch.nn.Module, object]:
        model, tokenizer = load_encoder(str(tiny_bert_dir), None, CLASSIFICATION, 1, CPU)
        held, _ = prepare_transfer(model, "sparse", params)
        data = CLASSIFICATION
        return model, train(
            model, tokenizer, data, data.train, data.test, run, held, path, 16, None, on_step
        )

    def kill_in_epoch_two(done: int, total: int) -> None:
        if done == 5:  # 3 steps per epoch: the second step of epoch 2
            raise Killed

    whole_model, whole = attempt(path=None)
    with pytest.raises(Killed):
        attempt(kill_in_epoch_two)
    assert torch.load(checkpoint, weights_only=True)["epochs_done"] == 1
    resumed_steps: list[int] = []
    resumed_model, resumed = attempt(lambda done, total: resumed_steps.append(done))
    assert resumed_steps == list(range(4, 10))
    assert resumed == whole
    for (name, parameter), other in zip(
        whole_model.state_dict().items(), resumed_model.state_dict().values(), strict=True
    ):
        assert torch.equal(parameter, other), name
    assert not list(checkpoint.parent.glob("*.partial"))


def test_linear_schedule_warms_up_then_decays_to_zero() -> None:
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=0.7)
    total = 10
    warmup = warmup_steps(0.25, total)  # ceil(2.5) = 3
    scheduler = linear_schedule(optimizer, warmup, total)
    rates = [optimizer.param_groups[0]["lr"]]
    for _ in range(total):
        optimizer.step()
        scheduler.step()
        rates.append(optimizer.param_groups[0]["lr"])
    factors = [0, 1 / 3, 2 / 3, 1, 6 / 7, 5 / 7, 4 / 7, 3 / 7, 2 / 7, 1 / 7, 0]
    assert warmup == 3 and rates[warmup] == 0.7 and rates[-1] == 0.0
    assert rates == pytest.approx([0.7 * factor for factor in factors], abs=1e-15)


def test_warmup_steps_round_up_without_float_noise() -> None:
    assert warmup_steps(0.07, 100) == 7  # 0.07 * 100 is 7.000000000000001
    assert warmup_steps(0.06, 1000) == 60 and warmup_steps(0.06, 101) == 7
    assert warmup_steps(0.0, 50) == 0


def test_epoch_order_depends_on_seed_and_epoch_only() -> None:
    first = epoch_order(30, seed=41, epoch=0)
    assert sorted(first) == list(range(30))
    assert first == epoch_order(30, seed=41, epoch=0)
    assert first != epoch_order(30, seed=41, epoch=1) and first != epoch_order(30, seed=42, epoch=0)


def test_bfloat16_autocast_trains_with_float32_weights(tiny_bert_dir: Path) -> None:
    model, tokenizer = load_encoder(str(tiny_bert_dir), None, CLASSIFICATION, 1, CPU)
    data = CLASSIFICATION
    outcome = train(
        model,
        tokenizer,
        data,
        data.train,
        data.test,
        _run(1, transfer="dense"),
        HeldWeights("dense"),
        None,
        16,
        torch.bfloat16,
    )
    assert all(parameter.dtype == torch.float32 for parameter in model.parameters())
    assert torch.isfinite(torch.tensor(outcome.final.loss))
