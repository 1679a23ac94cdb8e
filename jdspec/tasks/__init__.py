"""Study settings and task kinds. Importing this package registers all of them: the one import
site."""

from __future__ import annotations

from jdspec.tasks import (  # noqa: F401  (registration)
    benchmark,
    context_length,
    data_adequacy,
    factoid_vs_mcq,
    finetune_human_gap,
    human_gap,
    k_shot,
    mcq,
    mode_connectivity,
    option_count,
    qa,
)
from jdspec.tasks.core import SETTINGS, TASK_KINDS, Level

__all__ = ["SETTINGS", "TASK_KINDS", "Level"]
