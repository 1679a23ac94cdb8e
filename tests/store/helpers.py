"""What the store tests share: a cell's flattened row and results to write for it."""

from __future__ import annotations

from pathlib import Path

from jdspec import store
from jdspec.results import CellResult, ExampleRecord, MetricValue

ROW = {
    "cell_hash": "c1",
    "variant_hash": "v1",
    "run_id": "r1",
    "model": "m",
    "method": "magnitude",
    "family": "magnitude",
    "strength_name": "sparsity",
    "strength": 0.5,
    "setting": "option_count",
    "level": "4 options",
    "seed": 0,
    "cell": '{"a":1}',
}


def done(cell_hash: str = "c1", metrics: tuple[MetricValue, ...] | None = None) -> CellResult:
    """A done cell: accuracy 2/3 over three examples (unless `metrics` says otherwise)."""
    examples = tuple(
        ExampleRecord(f"e{i}", "h", "A", "B", i % 2 == 0, -1.5, (-1.5, -2.0)) for i in range(3)
    )
    metrics = metrics if metrics is not None else (MetricValue("accuracy", 2 / 3, 3),)
    return CellResult(cell_hash, "done", 1_700_000_000.0, 2.5, metrics, examples)


def scored(accuracy: float, prediction: str = "A") -> CellResult:
    """A done c1 whose metric and examples' predictions say which write it came from."""
    examples = tuple(
        ExampleRecord(f"e{i}", "h", prediction, "B", False, -accuracy, (-accuracy,))
        for i in range(3)
    )
    return CellResult(
        "c1", "done", 1.0, accuracy, (MetricValue("accuracy", accuracy, 3),), examples
    )


def write(path: Path, row: dict, result: CellResult) -> None:
    """One cell written as a run writes it, through a Writer of its own."""
    with store.writing(path, "a test") as writer:
        store.write_cell(writer, row, result)


def values(source: store.Source, table: str) -> list[tuple]:
    frame = store.read_frame(source, f"SELECT cell_hash, metric, value FROM {table} ORDER BY ALL")
    return list(frame.itertuples(index=False, name=None))


def all_rows(source: store.Source, table: str) -> list[tuple]:
    frame = store.read_frame(source, f"SELECT * FROM {table} ORDER BY ALL")
    return [tuple(map(str, row)) for row in frame.itertuples(index=False, name=None)]


def version(path: Path) -> str:
    frame = store.read_frame(path, "SELECT value FROM meta WHERE key = 'schema_version'")
    return frame["value"].item()
