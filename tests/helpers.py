"""Tiny offline building blocks for tests: trained BPE and WordPiece tokenizers, random models,
small labelled tasks for fine-tuning."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import (
    BertConfig,
    BertModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from jdspec.data.finetune_data import ChoiceExample, Head, LabelledExample, TaskData

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


POSITIVE = ("good", "great", "happy", "fine", "nice")
NEGATIVE = ("bad", "sad", "terrible", "awful", "poor")
FILLER = ("the", "movie", "film", "was", "a", "day", "story", "and", "very", "it", "what", "which")


def train_wordpiece(corpus: tuple[str, ...]) -> PreTrainedTokenizerFast:
    """A lower-casing WordPiece tokenizer (as BERT's) with [CLS] a [SEP] b [SEP] pairs, offline."""
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    trainer = trainers.WordPieceTrainer(vocab_size=300, special_tokens=special, show_progress=False)
    tokenizer.train_from_iterator(corpus * 3, trainer)
    ids = [(token, tokenizer.token_to_id(token)) for token in ("[CLS]", "[SEP]")]
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=ids
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )


def tiny_bert_folder(folder: Path) -> Path:
    """A random 2-layer BERT encoder (no head) and its tokenizer, as load_encoder reads them."""
    tokenizer = train_wordpiece(tuple(" ".join(POSITIVE + NEGATIVE + FILLER).split()))
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _sentence(rng: random.Random, positives: int, negatives: int) -> str:
    words = [rng.choice(FILLER) for _ in range(rng.randint(1, 6))]
    words += [rng.choice(POSITIVE) for _ in range(positives)]
    words += [rng.choice(NEGATIVE) for _ in range(negatives)]
    rng.shuffle(words)
    return " ".join(words)


def _example(rng: random.Random, head: Head, example_id: str) -> LabelledExample | ChoiceExample:
    """Classification: does the pair's second sentence praise? Regression: praise minus blame.
    Multiple choice: which of three endings praises?"""
    if head == "multiple_choice":
        label = rng.randrange(3)
        context = _sentence(rng, 0, 0)
        endings = tuple(_sentence(rng, int(i == label), int(i != label)) for i in range(3))
        return ChoiceExample(example_id, tuple((context, ending) for ending in endings), label)
    positives, negatives = rng.randint(0, 2), rng.randint(0, 2)
    if head == "regression":
        return LabelledExample(
            example_id, (_sentence(rng, positives, negatives),), float(positives - negatives)
        )
    label = rng.randrange(2)
    texts = (_sentence(rng, positives, negatives), _sentence(rng, label, 1 - label))
    return LabelledExample(example_id, texts, float(label))


HEAD_METRICS = {
    "classification": ("accuracy", "f1", "matthews"),
    "regression": ("pearson", "spearman"),
    "multiple_choice": ("accuracy",),
}


def tiny_task(head: Head, train_count: int = 24, test_count: int = 12, seed: int = 0) -> TaskData:
    """A small seeded task of `head`'s kind over the tiny BERT's vocabulary."""
    rng = random.Random(seed)
    examples = [_example(rng, head, f"{head}-{i}") for i in range(train_count + test_count)]
    label_count = {"classification": 2, "regression": 1, "multiple_choice": 3}[head]
    return TaskData(
        name=f"tiny-{head}",
        head=head,
        label_count=label_count,
        metrics=HEAD_METRICS[head],
        train=tuple(examples[:train_count]),
        test=tuple(examples[train_count:]),
    )
