"""Compression methods. Importing this package registers every method: the one import site.

Each method's module imports torch inside the functions that run on weights, never at the
top: validating and planning a spec then costs no torch import (3 s, more with CUDA).
"""

from __future__ import annotations

from jdspec.compress import gptq, lowrank, magnitude, none, rtn, sparsegpt, wanda  # noqa: F401
from jdspec.compress.core import COMPRESSORS, CompressionRecord, apply_compressor

__all__ = ["COMPRESSORS", "CompressionRecord", "apply_compressor"]
