"""jd's file cache (JD_CACHE, default ~/.cache/jd): converted models, training checkpoints and
fine-tuned end points. Torch-free, so the runner can clean up without loading a model."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def cache_root() -> Path:
    return Path(os.environ.get("JD_CACHE", Path.home() / ".cache" / "jd"))


def checkpoint_folder(cell_hash: str) -> Path:
    """Where a training cell keeps its last completed epoch until the cell is stored."""
    return cache_root() / "checkpoints" / cell_hash


def remove_checkpoint(cell_hash: str) -> None:
    """Called once the cell's result is committed: the checkpoint has no further use."""
    shutil.rmtree(checkpoint_folder(cell_hash), ignore_errors=True)


def finetuned_folder() -> Path:
    """Fine-tuned end points that several cells share (the dense end of Appendix C's lines)."""
    return cache_root() / "finetuned"
