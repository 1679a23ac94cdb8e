"""Data sets: hub, offline packages. Importing registers every multiple-choice set."""

from __future__ import annotations

from jdspec.data.mcq import MCQ_DATASETS, MCQData, MCQItem, load_mcq

__all__ = ["MCQ_DATASETS", "MCQData", "MCQItem", "load_mcq"]
