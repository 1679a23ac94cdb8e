"""The calibration engine against plain forward hooks on float64 models, and token windows."""

from __future__ import annotations

import copy
import random
import subprocess
import sys

import pytest
import torch
from pydantic import ValidationError
from torch import nn
from transformers import Gemma3ForCausalLM

from jdspec.compress import calibration as calibration_module
from jdspec.compress.calibration import CalibrationParams, calibration_tokens, compress_layerwise
from jdspec.compress.core import find_targets
from jdspec.errors import SpecError
from tests.helpers import CORPUS, tiny_gemma3_config, tiny_llama, train_tokenizer

VOCABULARY = 100


def _ids(samples: int, seq_len: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, VOCABULARY, (samples, seq_len), generator=generator)


def _reference_statistics(
    model: nn.Module, calibration: torch.Tensor, names: list[str]
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """(sum_t x_t^2, (2/N) sum_t x_t x_t^T) in float64 from hooks during whole-model forwards."""
    inputs: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    modules = dict(model.named_modules())
    handles = [
        modules[name].register_forward_hook(
            lambda module, args, output, name=name: inputs[name].append(args[0].detach())
        )
        for name in names
    ]
    with torch.no_grad():
        for batch in calibration.split(3):
            model(input_ids=batch, use_cache=False)
    for handle in handles:
        handle.remove()
    result = {}
    for name, chunks in inputs.items():
        X = torch.cat([chunk.reshape(-1, chunk.shape[-1]) for chunk in chunks]).double()
        result[name] = (X.square().sum(dim=0), 2 / X.shape[0] * X.T @ X)
    return result


def _recorded(
    model: nn.Module, calibration: torch.Tensor, statistic: str, change: bool = False
) -> dict[str, torch.Tensor]:
    """Run the engine, keeping each target's statistic; `change` zeroes every other input column."""
    targets = find_targets(model, ("Linear",), ())
    seen: dict[str, torch.Tensor] = {}

    def compress_matrix(name: str, linear: nn.Linear, values: torch.Tensor) -> None:
        seen[name] = values.clone()
        if change:
            linear.weight[:, ::2] = 0

    compress_layerwise(model, calibration, targets, statistic, compress_matrix, batch_size=4)
    assert list(seen) == list(targets)
    return seen


def _assert_close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    assert actual.dtype == torch.float32
    torch.testing.assert_close(
        actual.double(), expected, rtol=2e-6, atol=1e-6 * expected.abs().max()
    )


@pytest.mark.parametrize("statistic", ["column_norms", "hessian"])
def test_statistics_match_hooks_on_the_unmodified_model(statistic: str) -> None:
    model = tiny_llama(VOCABULARY).double()
    calibration = _ids(10, 12)
    expected = _reference_statistics(
        copy.deepcopy(model), calibration, list(find_targets(model, ("Linear",), ()))
    )
    recorded = _recorded(model, calibration, statistic)
    assert len(recorded) == 14
    for name, values in recorded.items():
        _assert_close(values, expected[name][0 if statistic == "column_norms" else 1])


def test_next_block_is_calibrated_on_compressed_outputs() -> None:
    dense = tiny_llama(VOCABULARY).double()
    model = copy.deepcopy(dense)
    calibration = _ids(6, 12, seed=1)
    recorded = _recorded(model, calibration, "hessian", change=True)
    half_done = copy.deepcopy(dense)  # block 0 compressed as the engine did, block 1 still dense
    half_done.model.layers[0].load_state_dict(model.model.layers[0].state_dict())
    block_one = [name for name in recorded if name.startswith("model.layers.1.")]
    expected = _reference_statistics(half_done, calibration, block_one)
    unchanged = _reference_statistics(dense, calibration, block_one)
    for name in block_one:
        _assert_close(recorded[name], expected[name][1])
        assert not torch.allclose(expected[name][1], unchanged[name][1], rtol=1e-3)
    assert bool((model.model.layers[1].self_attn.q_proj.weight[:, ::2] == 0).all())


def test_gemma3_blocks_get_their_own_masks_and_position_embeddings() -> None:
    """Block 0 slides over 4 tokens, block 1 attends to all 16: reusing block 0's would differ."""
    torch.manual_seed(0)
    config = tiny_gemma3_config(
        ["sliding_attention", "full_attention"],
        4,
        vocab_size=VOCABULARY,
        max_position_embeddings=64,
    )
    model = Gemma3ForCausalLM(config).eval().double()
    calibration = _ids(5, 16, seed=2)
    expected = _reference_statistics(
        copy.deepcopy(model), calibration, list(find_targets(model, ("Linear",), ()))
    )
    for name, values in _recorded(model, calibration, "column_norms").items():
        _assert_close(values, expected[name][0])


class _KeywordBlock(nn.Module):
    """A block called with hidden_states by keyword, returning a tuple (older transformers)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 8)

    def forward(self, hidden_states: torch.Tensor, scale: float) -> tuple[torch.Tensor]:
        return (hidden_states + torch.tanh(self.linear(hidden_states * scale)),)


class _KeywordModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCABULARY, 8)
        self.layers = nn.ModuleList([_KeywordBlock() for _ in range(3)])

    def forward(self, input_ids: torch.Tensor, use_cache: bool) -> torch.Tensor:
        hidden = self.embed(input_ids)
        for index, layer in enumerate(self.layers):
            hidden = layer(hidden_states=hidden, scale=index + 1.0)[0]
        return hidden


def test_keyword_hidden_states_and_tuple_outputs() -> None:
    torch.manual_seed(0)
    model = _KeywordModel().double()
    calibration = _ids(7, 5, seed=3)
    expected = _reference_statistics(
        copy.deepcopy(model), calibration, [f"layers.{i}.linear" for i in range(3)]
    )
    for name, values in _recorded(model, calibration, "hessian").items():
        _assert_close(values, expected[name][1])


DOCUMENTS = [f"document {index}: " + " ".join(CORPUS[index % 6 :]) for index in range(40)]


@pytest.fixture
def small_corpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(calibration_module, "calibration_texts", lambda *args: list(DOCUMENTS))


@pytest.mark.parametrize("adds_bos", [True, False])
def test_windows_are_consecutive_pieces_of_the_shuffled_stream(
    small_corpus: None, adds_bos: bool
) -> None:
    tokenizer = train_tokenizer(CORPUS, adds_bos=adds_bos)
    params = CalibrationParams(n_samples=5, seq_len=32, seed=3)
    tokens = calibration_tokens(params, tokenizer)
    assert tokens.shape == (5, 32) and tokens.dtype == torch.long
    shuffled = list(DOCUMENTS)
    random.Random(3).shuffle(shuffled)
    stream = tokenizer("\n\n".join(shuffled), add_special_tokens=False)["input_ids"]
    bos = tokenizer.bos_token_id
    if adds_bos:
        assert bool((tokens[:, 0] == bos).all())
        assert tokens[:, 1:].flatten().tolist() == stream[: 5 * 31]
    else:
        assert tokens.flatten().tolist() == stream[: 5 * 32]


def test_windows_depend_on_the_seed_only(small_corpus: None) -> None:
    tokenizer = train_tokenizer(CORPUS, adds_bos=False)
    first = calibration_tokens(CalibrationParams(n_samples=4, seq_len=16, seed=0), tokenizer)
    again = calibration_tokens(CalibrationParams(n_samples=4, seq_len=16, seed=0), tokenizer)
    other = calibration_tokens(CalibrationParams(n_samples=4, seq_len=16, seed=1), tokenizer)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_too_short_corpus_names_the_tokens_available(small_corpus: None) -> None:
    tokenizer = train_tokenizer(CORPUS, adds_bos=False)
    available = len(tokenizer("\n\n".join(DOCUMENTS), add_special_tokens=False)["input_ids"])
    with pytest.raises(SpecError, match=f"gives {available} tokens.*need 4096"):
        calibration_tokens(CalibrationParams(n_samples=2, seq_len=2048), tokenizer)


def test_params_pin_the_revision_and_validate() -> None:
    assert CalibrationParams().revision == "0.9.0"
    assert CalibrationParams(source="hub").revision == "main"
    assert CalibrationParams(dataset="c4", source="hub", revision="abc").revision == "abc"
    with pytest.raises(ValidationError, match="did you mean 'wikitext2'"):
        CalibrationParams(dataset="wikitext")
    with pytest.raises(ValidationError, match="'c4' is hub only"):
        CalibrationParams(dataset="c4")
    with pytest.raises(ValidationError):
        CalibrationParams(seq_len=4)
    with pytest.raises(ValidationError):
        CalibrationParams(n_samples=0)
    with pytest.raises(ValidationError):
        CalibrationParams(nsamples=4)


def test_params_import_without_torch() -> None:
    code = "import sys, jdspec.compress.calibration; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.integration
def test_default_params_fit_boolq_passages_with_smollm2() -> None:
    from jdspec.models import load_model
    from tests.test_models import SMOLLM2

    _, tokenizer = load_model(SMOLLM2, "float32", "cpu")
    tokens = calibration_tokens(CalibrationParams(), tokenizer)
    assert tokens.shape == (128, 2048)
    assert int(tokens.max()) < len(tokenizer)
