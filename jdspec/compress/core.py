"""What every compressor shares: the registry, N:M masks' type, target resolution, the record."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Annotated, Any, Protocol

from pydantic import BeforeValidator, PlainSerializer

from jdspec.errors import SpecError
from jdspec.registry import Registry

if TYPE_CHECKING:
    from torch import nn
from jdspec.results import CompressionRecord, MatrixStats


@dataclass(frozen=True, order=True)
class NM:
    """N:M structure: `kept` weights kept in every `group` consecutive weights along the input."""

    kept: int
    group: int

    @property
    def sparsity(self) -> float:
        return 1.0 - self.kept / self.group

    def __str__(self) -> str:
        return f"{self.kept}:{self.group}"


def _parse_nm(value: Any) -> NM:
    if isinstance(value, NM):
        return value
    if isinstance(value, int):
        raise ValueError(
            f"expected a quoted 'N:M' such as '2:4'; YAML reads an unquoted 2:4 "
            f"as the base-60 number 124 (got {value})"
        )
    match = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", str(value))
    if not match:
        raise ValueError(f"expected 'N:M' such as '2:4', got {value!r}")
    kept, group = int(match[1]), int(match[2])
    if not 1 <= kept <= group:
        raise ValueError(f"N:M needs 1 <= N <= M (N kept of every M), got {kept}:{group}")
    return NM(kept, group)


NMField = Annotated[NM, BeforeValidator(_parse_nm), PlainSerializer(str, return_type=str)]


class CompressorParams(Protocol):
    """What the planner and reports need from every method's params model."""

    method: str

    def strength(self) -> float:
        """The swept knob as one number (sparsity for pruning), 0 for the dense model."""
        ...

    def family(self) -> str:
        """The curve this variant belongs to in a report, e.g. 'magnitude N:8'."""
        ...

    def strength_name(self) -> str:
        """What `strength` measures, for axes and tables: 'sparsity', 'bits', 'rank'."""
        ...


CompressFunction = Callable[[Any, Any, Any], CompressionRecord]


@dataclass(frozen=True)
class Compressor:
    """A registered method: its params model, its version and its function.

    The function is called as function(model, params, calibration): `calibration` is a
    (samples, seq_len) tensor of token ids for methods registered with needs_calibration
    (their params carry a `calibration` field), None for the others. `supports_transfer`: the
    fine-tuning transfer modes can hold its mask (jdspec/finetune/transfer.py).
    """

    params_model: type
    version: int
    strength_fields: tuple[str, ...]
    function: CompressFunction
    needs_calibration: bool = False
    supports_transfer: bool = False


COMPRESSORS: Registry[Compressor] = Registry("compression method")


def register_compressor(
    name: str,
    params_model: type,
    version: int,
    strength_fields: tuple[str, ...] = (),
    needs_calibration: bool = False,
    supports_transfer: bool = False,
) -> Callable[[CompressFunction], CompressFunction]:
    """Register `function` under `name`; `strength_fields` are the params a spec may sweep."""

    def add(function: CompressFunction) -> CompressFunction:
        entry = Compressor(
            params_model, version, strength_fields, function, needs_calibration, supports_transfer
        )
        COMPRESSORS.register(name)(entry)
        return function

    return add


def apply_compressor(model: nn.Module, params: Any, tokenizer: Any = None) -> CompressionRecord:
    """Compress `model` in place with the method `params` names; time it, calibration included."""
    import torch

    compressor = COMPRESSORS.get(params.method)
    start = time.perf_counter()
    calibration = None
    if compressor.needs_calibration:
        from jdspec.compress.calibration import calibration_tokens

        calibration = calibration_tokens(params.calibration, tokenizer)
    with torch.no_grad():
        record = compressor.function(model, params, calibration)
    return replace(record, seconds=time.perf_counter() - start)


def find_blocks(model: nn.Module) -> nn.ModuleList:
    """The decoder (or encoder) blocks: the ModuleList holding the most parameters.

    Works for Llama/Gemma (`model.layers`), GPT-2 (`transformer.h`), OPT (`decoder.layers`)
    and BERT (`encoder.layer`) without naming any of them.
    """
    from torch import nn

    lists = [module for module in model.modules() if isinstance(module, nn.ModuleList)]
    if not lists:
        raise SpecError(f"{type(model).__name__} has no list of blocks to compress")
    return max(lists, key=lambda blocks: sum(p.numel() for p in blocks.parameters()))


def _matches(pattern: str, name: str, module: nn.Module) -> bool:
    """A pattern is `re:<regex>` on the module name, a layer class name, or an exact name."""
    if pattern.startswith("re:"):
        return re.fullmatch(pattern[3:], name) is not None
    return pattern == type(module).__name__ or pattern == name


def find_targets(
    model: nn.Module, targets: tuple[str, ...], ignore: tuple[str, ...]
) -> dict[str, nn.Linear]:
    """The Linears inside the blocks that `targets` selects and `ignore` does not, by full name.

    Embeddings, the LM head and task heads live outside the blocks, so they are never targets.
    """
    from torch import nn

    blocks = find_blocks(model)
    block_ids = {id(module) for module in blocks.modules()}
    found = {
        name: module
        for name, module in model.named_modules()
        if id(module) in block_ids
        and isinstance(module, nn.Linear)
        and any(_matches(p, name, module) for p in targets)
        and not any(_matches(p, name, module) for p in ignore)
    }
    if not found:
        raise SpecError(f"targets {list(targets)} minus ignore {list(ignore)} select no Linear")
    return found


def measure(method: str, matrices: dict[str, nn.Linear], notes: str = "") -> CompressionRecord:
    """Count exact zeros in each target weight: achieved sparsity is measured, never assumed."""
    stats = tuple(
        MatrixStats(name, linear.weight.numel(), int((linear.weight == 0).sum()))
        for name, linear in matrices.items()
    )
    return CompressionRecord(method=method, matrices=stats, notes=notes)


def check_nm_groups(targets: dict[str, nn.Linear], structure: NM) -> None:
    """Reject before calibrating or pruning anything, so a bad spec leaves the model whole."""
    for name, linear in targets.items():
        if linear.in_features % structure.group:
            raise SpecError(
                f"mask_structure {structure}: {name} has {linear.in_features} input features, "
                f"not a multiple of M={structure.group}"
            )
