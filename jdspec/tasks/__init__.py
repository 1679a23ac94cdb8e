"""Study settings. Importing this package registers every setting: the one import site."""

from __future__ import annotations

from jdspec.tasks import k_shot, option_count  # noqa: F401  (registration)
from jdspec.tasks.core import SETTINGS, Level

__all__ = ["SETTINGS", "Level"]
