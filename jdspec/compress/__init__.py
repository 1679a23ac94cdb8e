"""Compression methods. Importing this package registers every method: the one import site."""

from __future__ import annotations

from jdspec.compress import magnitude, none  # noqa: F401  (registration)
from jdspec.compress.core import COMPRESSORS, CompressionRecord, apply_compressor

__all__ = ["COMPRESSORS", "CompressionRecord", "apply_compressor"]
