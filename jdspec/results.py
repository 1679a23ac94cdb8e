"""The records a worker returns and the single writer stores: plain data, no database handles."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MatrixStats:
    """Achieved compression of one weight matrix, measured on the weights."""

    name: str
    numel: int
    zeros: int
    bits: float | None = None  # quantizers: log2 of the most distinct values in one group
    rank: int | None = None  # low rank: the rank of the stored weight

    @property
    def sparsity(self) -> float:
        return self.zeros / self.numel if self.numel else 0.0


@dataclass(frozen=True)
class CompressionRecord:
    """What a compressor did: per-matrix measurements, time taken, and notes (e.g. tie-breaking)."""

    method: str
    matrices: tuple[MatrixStats, ...]
    seconds: float = 0.0
    notes: str = ""

    @property
    def sparsity(self) -> float:
        numel = sum(m.numel for m in self.matrices)
        return sum(m.zeros for m in self.matrices) / numel if numel else 0.0


@dataclass(frozen=True)
class ExampleRecord:
    """One evaluated example, enough to recompute any statistic without the model."""

    example_id: str
    prompt_hash: str
    prediction: str
    gold: str
    correct: bool
    score: float  # log-likelihood of the prediction
    option_scores: tuple[float, ...] = ()


@dataclass(frozen=True)
class MetricValue:
    """A measure of a cell over `n` examples. A cell's final metrics have no step; those measured
    along the way have one: each fine-tuning epoch (step_name 'epoch', step 1, 2, ...), each point
    of a connectivity line ('alpha', 0 to 1)."""

    name: str
    value: float
    n: int
    step_name: str | None = None
    step: float | None = None


@dataclass(frozen=True)
class TaskResult:
    """What scoring one level gives: metrics and per-example records."""

    metrics: tuple[MetricValue, ...]
    examples: tuple[ExampleRecord, ...]


@dataclass(frozen=True)
class VariantResult:
    """One compressed model, as measured right after compression."""

    variant_hash: str
    compression: CompressionRecord


@dataclass(frozen=True)
class CellResult:
    """The outcome of one cell: done with metrics and examples, or failed with a traceback."""

    cell_hash: str
    status: str  # "done" | "failed"
    started_at: float
    seconds: float
    metrics: tuple[MetricValue, ...] = ()
    examples: tuple[ExampleRecord, ...] = ()
    error: str = ""
    batch_size: int | None = None  # the one used, which "auto" finds by probing


@dataclass(frozen=True)
class Progress:
    """Examples finished in the cell in flight, out of its total."""

    cell_hash: str
    done: int
    total: int


@dataclass(frozen=True)
class JobsRunning:
    """Jobs (compressed models) in flight on each node of a Ray run; sent when the counts change,
    empty once none is left."""

    per_node: dict[str, int]


@dataclass(frozen=True)
class Waiting:
    """Yielded by a backend before work that stores nothing for a while (loading and compressing
    a model; waiting on remote tasks), so the writer closes the store and readers get in."""
