"""Writing the store, for the run's Writer only: runs, spec membership, variants, and cells.

Each cell's rows and its status land in one transaction; a cell's earlier rows are never
overwritten but moved to the history tables in that same transaction.
"""

from __future__ import annotations

import math
from typing import Any

import duckdb
import pandas as pd

from jdspec.results import CellResult, VariantResult
from jdspec.store.connection import Writer, registered
from jdspec.store.schema import first_row

RESULT_COLUMNS = ("cell_hash", "metric", "step_name", "step", "value", "n")
EXAMPLE_COLUMNS = (
    "cell_hash",
    "example_id",
    "prompt_hash",
    "prediction",
    "gold",
    "correct",
    "score",
    "option_scores",
)
# Up to this many rows go in as one INSERT ... VALUES; DuckDB binds each value, so more rows go
# faster as a registered DataFrame, whose fixed cost (~1 ms) is ten such rows' (bench/README.md).
VALUES_ROWS = 16


def begin_run(writer: Writer, run: dict[str, Any]) -> None:
    """Record a run's provenance before its first cell."""
    with writer.connection() as connection:
        columns = ", ".join(run)
        marks = ", ".join("?" for _ in run)
        connection.execute(f"INSERT INTO runs ({columns}) VALUES ({marks})", list(run.values()))


def finish_run(writer: Writer, run_id: str, status: str, done: int, failed: int) -> None:
    with writer.connection() as connection:
        connection.execute(
            "UPDATE runs SET status = ?, finished_at = now(), cells_done = ?, cells_failed = ? "
            "WHERE run_id = ?",
            [status, done, failed, run_id],
        )


def write_members(writer: Writer, members: pd.DataFrame) -> None:
    """Which cells a spec holds, with its level labels and difficulties (spec-specific)."""
    with writer.connection() as connection, registered(connection, "members", members):
        connection.execute(
            "INSERT OR REPLACE INTO spec_cells SELECT spec, cell_hash, level, difficulty "
            "FROM members"
        )


def write_variant(writer: Writer, result: VariantResult, run_id: str) -> None:
    """The achieved compression, per matrix and overall; the first measurement is kept."""
    record = result.compression
    matrices = pd.DataFrame(
        {
            "variant_hash": result.variant_hash,
            "matrix": [m.name for m in record.matrices],
            "numel": [m.numel for m in record.matrices],
            "zeros": [m.zeros for m in record.matrices],
            "sparsity": [m.sparsity for m in record.matrices],
            "bits": [m.bits for m in record.matrices],
            "rank": [m.rank for m in record.matrices],
        }
    )
    with writer.connection() as connection:
        connection.execute("BEGIN")
        connection.execute(
            "INSERT OR IGNORE INTO variants VALUES (?, ?, ?, ?, ?, ?, now())",
            [
                result.variant_hash,
                record.method,
                record.sparsity,
                record.seconds,
                record.notes,
                run_id,
            ],
        )
        with registered(connection, "matrices", matrices):
            connection.execute("INSERT OR IGNORE INTO variant_matrices SELECT * FROM matrices")
        connection.execute("COMMIT")


def write_cell(writer: Writer, row: dict[str, Any], result: CellResult) -> None:
    """A cell's status, metrics and examples in one transaction: all of them or none.

    A cell stored before (a failed attempt retried, a done one rerun with --force) first moves
    to the history tables in that same transaction: a crash leaves the old rows or the new ones.
    """
    with writer.connection() as connection:
        connection.execute("BEGIN")
        previous = first_row(
            connection, "SELECT attempts FROM cells WHERE cell_hash = ?", [row["cell_hash"]]
        )
        if previous is not None:
            _supersede(connection, row["cell_hash"], row["run_id"])
        connection.execute(
            "INSERT INTO cells VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
            "to_timestamp(?), to_timestamp(?), ?, ?)",
            [
                row["cell_hash"],
                row["variant_hash"],
                result.status,
                row["run_id"],
                row["model"],
                row["method"],
                row["family"],
                row["strength_name"],
                row["strength"],
                row["setting"],
                row["level"],
                row["seed"],
                row["cell"],
                result.error or None,
                (previous[0] if previous else 0) + 1,
                result.started_at,
                result.started_at + result.seconds,
                result.seconds,
                result.batch_size,
            ],
        )
        if result.status == "done":
            _insert_rows(connection, "results", RESULT_COLUMNS, _metric_rows(result))
            _insert_rows(connection, "examples", EXAMPLE_COLUMNS, _example_rows(result))
        connection.execute("COMMIT")


def _supersede(connection: duckdb.DuckDBPyConnection, cell_hash: str, run_id: str) -> None:
    """Move a cell's rows to the history tables, stamped with now and the superseding run."""
    for table in ("cells", "results", "examples"):
        connection.execute(
            f"INSERT INTO {table}_history BY NAME SELECT *, now() AS superseded_at, "
            f"? AS superseded_by_run FROM {table} WHERE cell_hash = ?",
            [run_id, cell_hash],
        )
        connection.execute(f"DELETE FROM {table} WHERE cell_hash = ?", [cell_hash])


def _nan_as_null(value: Any) -> Any:
    """NaN as None, which DuckDB stores as NULL, as it stores a DataFrame's NaN."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, list):
        return [_nan_as_null(item) for item in value]
    return value


def _metric_rows(result: CellResult) -> list[tuple]:
    return [(result.cell_hash, m.name, m.step_name, m.step, m.value, m.n) for m in result.metrics]


def _example_rows(result: CellResult) -> list[tuple]:
    return [
        (
            result.cell_hash,
            e.example_id,
            e.prompt_hash,
            e.prediction,
            e.gold,
            e.correct,
            e.score,
            list(e.option_scores),
        )
        for e in result.examples
    ]


def _insert_rows(
    connection: duckdb.DuckDBPyConnection, table: str, columns: tuple[str, ...], rows: list[tuple]
) -> None:
    """Insert by column name: a migrated table may order its columns differently."""
    if not rows:
        return
    names = ", ".join(columns)
    if len(rows) <= VALUES_ROWS:
        row_marks = "(" + ", ".join("?" for _ in columns) + ")"
        connection.execute(
            f"INSERT INTO {table} ({names}) VALUES " + ", ".join([row_marks] * len(rows)),
            [_nan_as_null(value) for row in rows for value in row],
        )
        return
    with registered(connection, "rows_frame", pd.DataFrame(rows, columns=list(columns))):
        connection.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM rows_frame")
