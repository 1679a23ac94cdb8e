"""Time and peak memory of each method on a Llama-7B-shaped model with random weights.

Builds LlamaForCausalLM from a LlamaConfig (hidden 4096, intermediate 11008, 32 heads, vocab
32000; --blocks of its 32 blocks, 8 by default) with random weights, and random calibration ids
(--samples x --seq-len, 128 x 2048 by default). Times the calibration forward passes alone
(capture block 0's inputs, then run every block over every batch, as the layer-wise engine does,
without statistic hooks), then each method on a fresh copy of the weights. Times are also
scaled to 32 blocks (per-block work is the same in every block); peak memory is as measured.

    python bench/gpu_compressors.py                  # on one H200: a few minutes
    python bench/gpu_compressors.py --device cpu --hidden 256 --intermediate 688 --blocks 2 \\
        --samples 4 --seq-len 128                    # a functional check without a GPU
"""

from __future__ import annotations

import argparse
import inspect
import time
from collections.abc import Callable
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

from jdspec.compress import COMPRESSORS, CompressionRecord
from jdspec.compress.calibration import _capture_block_inputs, _run_block, compress_layerwise
from jdspec.compress.core import find_blocks
from jdspec.errors import SpecError

LLAMA_7B_BLOCKS = 32
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
# the engine's own batch: the calibration forward is timed as the methods run it
ENGINE_BATCH_SIZE = inspect.signature(compress_layerwise).parameters["batch_size"].default

METHODS = (
    ("magnitude 50%", "magnitude", {"sparsity": 0.5}),
    ("wanda 50%", "wanda", {"sparsity": 0.5}),
    ("sparsegpt 50%", "sparsegpt", {"sparsity": 0.5}),
    ("sparsegpt 2:4", "sparsegpt", {"mask_structure": "2:4"}),
    ("gptq 4-bit", "gptq", {"bits": 4}),
)


def build_model(arguments: argparse.Namespace) -> nn.Module:
    """A Llama of the flags' shape with transformers' random initialisation, seeded."""
    config = LlamaConfig(
        vocab_size=arguments.vocab,
        hidden_size=arguments.hidden,
        intermediate_size=arguments.intermediate,
        num_hidden_layers=arguments.blocks,
        num_attention_heads=arguments.heads,
        num_key_value_heads=arguments.heads,
        max_position_embeddings=max(4096, arguments.seq_len),
        tie_word_embeddings=False,
    )
    torch.manual_seed(arguments.seed)
    with torch.device(arguments.device):
        model = LlamaForCausalLM(config)
    return model.to(DTYPES[arguments.dtype]).eval()


def calibration_forward(model: nn.Module, calibration: torch.Tensor) -> None:
    """Capture block 0's inputs, then run every block over every batch: the engine's passes."""
    blocks = find_blocks(model)
    hidden, calls = _capture_block_inputs(model, blocks, calibration, ENGINE_BATCH_SIZE)
    for index, block in enumerate(blocks):
        for batch, call in enumerate(calls[index]):
            hidden[batch] = _run_block(block, hidden[batch], call)


def measure(
    device: torch.device, work: Callable[..., Any], *arguments: Any
) -> tuple[Any, float, float | None]:
    """work(*arguments)'s result, its seconds (synchronised) and the peak allocated GiB on CUDA
    meanwhile, model weights included (None off CUDA)."""
    is_cuda = device.type == "cuda"
    if is_cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    with torch.no_grad():
        result = work(*arguments)
    if is_cuda:
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if is_cuda else None
    return result, seconds, peak


def achieved(record: CompressionRecord | None) -> str:
    """Mean bits when a quantizer measured them, else the zeros counted in the weights."""
    if record is None:
        return "-"
    numel = sum(stats.numel for stats in record.matrices)
    if record.matrices and all(stats.bits is not None for stats in record.matrices):
        bits = sum(stats.bits * stats.numel for stats in record.matrices) / numel  # type: ignore[operator]
        return f"{bits:.2f} bits"
    return f"{record.sparsity:.2%} zeros"


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:1 or cpu")
    parser.add_argument("--dtype", default="bfloat16", choices=sorted(DTYPES))
    parser.add_argument("--hidden", type=int, default=4096)
    parser.add_argument("--intermediate", type=int, default=11008)
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--blocks", type=int, default=8, help="of Llama-7B's 32")
    parser.add_argument("--samples", type=int, default=128, help="calibration sequences")
    parser.add_argument("--seq-len", type=int, default=2048, help="calibration tokens each")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def main() -> None:
    arguments = parse_arguments()
    console = Console(stderr=True)
    device = torch.device(arguments.device)
    model = build_model(arguments)
    pristine = {name: tensor.to("cpu", copy=True) for name, tensor in model.state_dict().items()}
    generator = torch.Generator().manual_seed(arguments.seed)
    shape = (arguments.samples, arguments.seq_len)
    calibration = torch.randint(arguments.vocab, shape, generator=generator).to(device)
    weights_gib = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**30
    scale = LLAMA_7B_BLOCKS / arguments.blocks
    table = Table(
        title=f"Llama (hidden {arguments.hidden}, intermediate {arguments.intermediate}, "
        f"{arguments.heads} heads), {arguments.blocks} blocks, random {arguments.dtype} weights "
        f"({weights_gib:.2f} GiB) on {device}; calibration {shape[0]} x {shape[1]} random ids",
        caption=f"x32 blocks: seconds x {scale:g}, since every block does the same work; "
        f"peak memory (weights included) is measured on {arguments.blocks} blocks",
    )
    for column in ("method", "achieved", "seconds", "seconds x32 blocks", "peak GiB"):
        table.add_column(column, justify="left" if column == "method" else "right")

    def add_row(label: str, record: CompressionRecord | None, seconds: float, peak: Any) -> None:
        peak_text = "-" if peak is None else f"{peak:.2f}"
        row = (label, achieved(record), f"{seconds:.2f}", f"{seconds * scale:.1f}", peak_text)
        table.add_row(*row)

    console.print("calibration forward")
    add_row("calibration forward", *measure(device, calibration_forward, model, calibration))
    for label, method, fields in METHODS:
        try:
            compressor = COMPRESSORS.get(method)
        except SpecError:
            console.print(f"skip {label}: method {method!r} is not registered")
            continue
        params = compressor.params_model.model_validate({"method": method, **fields})
        model.load_state_dict(pristine)
        given = calibration if compressor.needs_calibration else None
        console.print(label)
        add_row(label, *measure(device, compressor.function, model, params, given))
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
