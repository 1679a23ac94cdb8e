"""Fine-tuning throughput at RoBERTa-large scale: jd's training step against a plain loop.

Builds a RoBERTa-large-shaped RobertaForSequenceClassification (hidden 1024, 24 blocks, 16
heads, intermediate 4096, vocabulary 50,265) with random weights and trains it on synthetic
sentences that fill --seq-len tokens, three ways, same batches, same recipe (AdamW, linear
warm-up, float32 master weights, autocast in --dtype):

- plain: a hand-written transformers loop (pre-tokenized batch, forward, loss, backward, step);
- jd dense: `jdspec.finetune.train`, tokenizing each batch as it goes;
- jd sparse: the same after `prepare_transfer(..., "sparse", magnitude 50% global)`, so every
  step also restores the held zeros (the sparse-transfer cost).

Prints samples and tokens per second after --warmup steps and the ratio to the plain loop.
Speed does not depend on the weights' values, so random weights time the step faithfully.
Needs no data or hub: the tokenizer is trained on the synthetic words here.

    python bench/gpu_finetune.py                              # on one H200, bf16: ~2 minutes
    python bench/gpu_finetune.py --device cpu --dtype float32 --hidden 128 --blocks 2 \\
        --heads 4 --intermediate 512 --steps 6 --warmup 2 --batch-size 8    # a CPU check
"""

from __future__ import annotations

import argparse
import contextlib
import random
import time

import torch
from rich.console import Console
from rich.table import Table
from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast, RobertaConfig, RobertaForSequenceClassification

from jdspec.compress.magnitude import MagnitudeParams
from jdspec.data.finetune_data import LabelledExample, TaskData
from jdspec.finetune.train import linear_schedule, train, warmup_steps
from jdspec.finetune.transfer import HeldWeights, prepare_transfer
from jdspec.tasks.finetune import TrainingRun

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
WORDS = tuple(f"w{index}" for index in range(2000))


def _tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer over the synthetic words: one token per word, offline."""
    tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    special = ["<pad>", "<unk>", "<s>", "</s>"]
    trainer = trainers.WordLevelTrainer(special_tokens=special, show_progress=False)
    tokenizer.train_from_iterator([" ".join(WORDS)], trainer)
    bos, eos = tokenizer.token_to_id("<s>"), tokenizer.token_to_id("</s>")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", bos), ("</s>", eos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", unk_token="<unk>", bos_token="<s>"
    )


def _task(count: int, seq_len: int) -> TaskData:
    """Binary classification of sentences long enough to be cut at seq_len tokens."""
    rng = random.Random(0)
    examples = tuple(
        LabelledExample(str(index), (" ".join(rng.choices(WORDS, k=seq_len)),), float(index % 2))
        for index in range(count)
    )
    return TaskData("synthetic", "classification", 2, ("accuracy",), examples, examples[:2])


def _model(args: argparse.Namespace, vocab_size: int, device: torch.device) -> torch.nn.Module:
    config = RobertaConfig(
        vocab_size=vocab_size,
        hidden_size=args.hidden,
        num_hidden_layers=args.blocks,
        num_attention_heads=args.heads,
        intermediate_size=args.intermediate,
        max_position_embeddings=args.seq_len + 2,
        num_labels=2,
    )
    torch.manual_seed(0)
    return RobertaForSequenceClassification(config).to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain_loop(args: argparse.Namespace, tokenizer, data: TaskData, device: torch.device) -> float:
    """Seconds per step after warm-up of a hand-written loop on pre-tokenized batches."""
    model = _model(args, len(tokenizer), device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
    total = args.steps + args.warmup
    scheduler = linear_schedule(optimizer, warmup_steps(0.06, total), total)
    batches = []
    for start in range(0, total * args.batch_size, args.batch_size):
        batch = data.train[start : start + args.batch_size]
        encoded = tokenizer(
            [example.texts[0] for example in batch],
            truncation=True,
            max_length=args.seq_len,
            padding=True,
            return_tensors="pt",
        ).to(device)
        labels = torch.tensor([int(example.label) for example in batch], device=device)
        batches.append((encoded, labels))
    autocast = (
        contextlib.nullcontext()
        if args.dtype == "float32"
        else torch.autocast(device.type, dtype=DTYPES[args.dtype])
    )
    times = []
    for encoded, labels in batches:
        _sync(device)
        start = time.perf_counter()
        with autocast:
            logits = model(**encoded).logits.float()
        loss = torch.nn.functional.cross_entropy(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        _sync(device)
        times.append(time.perf_counter() - start)
    return sum(times[args.warmup :]) / args.steps


def jd_loop(
    args: argparse.Namespace, tokenizer, data: TaskData, device: torch.device, mode: str
) -> float:
    """Seconds per step after warm-up of jdspec.finetune.train, in transfer `mode`."""
    model = _model(args, len(tokenizer), device)
    if mode == "dense":
        held = HeldWeights("dense")
    else:
        params = MagnitudeParams(sparsity=0.5, scope="global")
        held, _ = prepare_transfer(model, mode, params)
    total = args.steps + args.warmup
    run = TrainingRun(
        learning_rate=2e-5,
        epochs=1,
        batch_size=args.batch_size,
        max_length=args.seq_len,
        warmup_ratio=0.06,
        weight_decay=0.0,
        seed=0,
        transfer=mode,
    )
    subset = TaskData(
        data.name, data.head, 2, data.metrics, data.train[: total * args.batch_size], data.test
    )
    stamps: list[float] = []

    def on_step(done: int, total_steps: int) -> None:
        _sync(device)
        stamps.append(time.perf_counter())

    dtype = None if args.dtype == "float32" else DTYPES[args.dtype]
    train(model, tokenizer, subset, subset.train, subset.test, run, held, None, 64, dtype, on_step)
    return (stamps[-1] - stamps[args.warmup - 1]) / args.steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16", choices=sorted(DTYPES))
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--blocks", type=int, default=24)
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--intermediate", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30, help="timed steps")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    args = parser.parse_args()
    device = torch.device(args.device)
    tokenizer = _tokenizer()
    data = _task((args.steps + args.warmup) * args.batch_size, args.seq_len)
    model = _model(args, len(tokenizer), torch.device("meta"))
    parameters = sum(parameter.numel() for parameter in model.parameters())
    del model
    rows = [("plain transformers loop", plain_loop(args, tokenizer, data, device))]
    rows.append(("jd train, dense", jd_loop(args, tokenizer, data, device, "dense")))
    rows.append(("jd train, sparse (mask held)", jd_loop(args, tokenizer, data, device, "sparse")))
    table = Table(
        title=f"fine-tuning step: {parameters / 1e6:.0f}M parameters, batch {args.batch_size}"
        f" x {args.seq_len} tokens, {args.dtype} on {device}",
        title_justify="left",
    )
    for column in ("loop", "s/step", "samples/s", "tokens/s", "vs plain"):
        table.add_column(column)
    plain = rows[0][1]
    for name, seconds in rows:
        table.add_row(
            name,
            f"{seconds:.4f}",
            f"{args.batch_size / seconds:.1f}",
            f"{args.batch_size * args.seq_len / seconds:,.0f}",
            f"{plain / seconds:.2f}x",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
