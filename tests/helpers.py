"""Tiny offline building blocks for tests: a trained byte-level BPE tokenizer, random models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

CORPUS = (
    "The capital of France is Paris.",
    "Question: what is two plus two? Answer: four",
    "the quick brown fox jumps over the lazy dog",
    "Answer: A",
    "A B C D",
    "Paris London Berlin Rome",
)


def train_tokenizer(corpus: tuple[str, ...], adds_bos: bool) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (as GPT-2's and SmolLM2's) trained on `corpus`, offline."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus * 3, trainer)
    if adds_bos:
        tokenizer.post_processor = processors.TemplateProcessing(
            single="<s> $A", special_tokens=[("<s>", tokenizer.token_to_id("<s>"))]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )


def tiny_llama(vocab_size: int, seed: int = 0) -> LlamaForCausalLM:
    """A 2-block random Llama, small enough to evaluate hundreds of prompts in seconds."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        initializer_range=0.1,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config).eval()


def tiny_gemma3_config(layer_types: list[str], sliding_window: int, **extra: object) -> Any:
    """A tiny Gemma 3 text config: its layers alternate sliding-window and full attention."""
    from transformers import Gemma3TextConfig

    return Gemma3TextConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=len(layer_types),
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        sliding_window=sliding_window,
        layer_types=layer_types,
        **extra,
    )


SLIDING_WINDOW = 4  # shorter than most test prompts, so a wrong cache slot changes results
INITIALIZER_RANGE = 0.1  # large enough that a wrong position or mask moves scores by > 1e-2


def _tiny_config(architecture: str, **shared: object) -> Any:
    """A tiny config; Gemma 3's alternates sliding-window and full attention layers, GPT-2's
    learned absolute positions catch a position shifted by padding."""
    from transformers import GPT2Config

    if architecture == "llama":
        return LlamaConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            **shared,
        )
    if architecture == "gemma3":
        layer_types = ["sliding_attention", "full_attention", "sliding_attention"]
        return tiny_gemma3_config(
            layer_types, SLIDING_WINDOW, query_pre_attn_scalar=8, pad_token_id=0, **shared
        )
    return GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=128, **shared)


def tiny_causal_lm(architecture: str, vocab_size: int, attention: str = "sdpa") -> Any:
    """A tiny llama, gemma3 or gpt2 causal LM with seeded random weights, in eval mode."""
    from transformers import Gemma3ForCausalLM, GPT2LMHeadModel

    classes = {"llama": LlamaForCausalLM, "gemma3": Gemma3ForCausalLM, "gpt2": GPT2LMHeadModel}
    config = _tiny_config(
        architecture,
        vocab_size=vocab_size,
        initializer_range=INITIALIZER_RANGE,
        attn_implementation=attention,
        bos_token_id=1,
        eos_token_id=2,
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return classes[architecture](config).eval()


def save_tiny_model(folder: Path) -> Path:
    """A transformers folder (config, safetensors, tokenizer) that jd loads as `source: local`."""
    tokenizer = train_tokenizer(CORPUS, adds_bos=True)
    model = tiny_llama(len(tokenizer))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
