"""Writing the store: transactional round trips, history of superseded rows, rows inserted alike
however many."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from jdspec import store
from jdspec.compress.core import CompressionRecord, MatrixStats
from jdspec.results import CellResult, ExampleRecord, MetricValue, VariantResult
from jdspec.store import writes
from tests.store.helpers import ROW, all_rows, done, scored, values, write


def test_cell_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "jd.duckdb"
    write(path, ROW, done())
    with duckdb.connect(str(path), read_only=True) as connection:
        assert connection.execute("SELECT status, attempts, seconds FROM cells").fetchall() == [
            ("done", 1, 2.5)
        ]
        assert connection.execute("SELECT metric, value, n FROM results").fetchall() == [
            ("accuracy", 2 / 3, 3)
        ]
        rows = connection.execute(
            "SELECT example_id, correct, option_scores FROM examples ORDER BY example_id"
        ).fetchall()
    assert rows == [
        ("e0", True, [-1.5, -2.0]),
        ("e1", False, [-1.5, -2.0]),
        ("e2", True, [-1.5, -2.0]),
    ]


def test_failed_then_done_replaces_status_and_counts_attempts(tmp_path: Path) -> None:
    path = tmp_path / "jd.duckdb"
    write(path, ROW, CellResult("c1", "failed", 0.0, 1.0, error="Traceback\nBoom"))
    assert store.cell_states(path, ["c1"]).status.tolist() == ["failed"]
    write(path, ROW, done())
    states = store.read_frame(path, "SELECT status, attempts, error FROM cells")
    assert states.to_dict("records") == [{"status": "done", "attempts": 2, "error": None}]


def test_a_failing_write_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "jd.duckdb"
    write(path, ROW, done())
    with pytest.raises(duckdb.ConstraintException):
        write(path, {**ROW, "cell_hash": "c2"}, done("c1"))  # duplicate results
    assert store.read_frame(path, "SELECT count(*) AS n FROM cells").n.item() == 1


def test_variant_matrices(tmp_path: Path) -> None:
    path = tmp_path / "jd.duckdb"
    record = CompressionRecord("magnitude", (MatrixStats("a", 10, 5), MatrixStats("b", 30, 9)))
    with store.writing(path, "a test") as writer:
        store.write_variant(writer, VariantResult("v1", record), "r1")
    frame = store.read_frame(path, "SELECT sparsity FROM variants")
    assert frame.sparsity.item() == pytest.approx(14 / 40)
    assert store.read_frame(path, "SELECT sum(zeros) AS z FROM variant_matrices").z.item() == 14


@contextmanager
def _writes(path: Path, one_writer: bool) -> Iterator[tuple[Callable, store.Source]]:
    """Write cells through one Writer for all, as a run does, or through a Writer per write;
    with the source to read them back from meanwhile (the Writer reads as well)."""
    if not one_writer:
        yield (lambda row, result: write(path, row, result)), path
        return
    with store.writing(path, "a test") as writer:
        yield (lambda row, result: store.write_cell(writer, row, result)), writer


@pytest.mark.parametrize("one_writer", [False, True], ids=["writer per write", "one writer"])
def test_a_forced_rewrite_keeps_every_earlier_result_in_history(
    tmp_path: Path, one_writer: bool
) -> None:
    path = tmp_path / "jd.duckdb"
    with _writes(path, one_writer) as (write_cell, _):
        write_cell({**ROW, "run_id": "r1"}, scored(0.5, "A"))
        write_cell({**ROW, "run_id": "r2"}, scored(0.75, "C"))
        write_cell({**ROW, "run_id": "r3"}, scored(0.25, "D"))
    assert values(path, "results") == [("c1", "accuracy", 0.25)]
    live = store.read_frame(path, "SELECT run_id, attempts, seconds FROM cells")
    assert live.to_dict("records") == [{"run_id": "r3", "attempts": 3, "seconds": 0.25}]
    assert store.read_frame(path, "SELECT DISTINCT prediction FROM examples").prediction[0] == "D"
    cells = store.read_frame(
        path,
        "SELECT run_id, attempts, seconds, superseded_by_run, superseded_at IS NOT NULL AS dated "
        "FROM cells_history ORDER BY run_id",
    )
    assert cells.to_dict("records") == [
        {"run_id": "r1", "attempts": 1, "seconds": 0.5, "superseded_by_run": "r2", "dated": True},
        {"run_id": "r2", "attempts": 2, "seconds": 0.75, "superseded_by_run": "r3", "dated": True},
    ]
    results = store.read_frame(
        path, "SELECT value, superseded_by_run FROM results_history ORDER BY superseded_by_run"
    )
    assert results.values.tolist() == [[0.5, "r2"], [0.75, "r3"]]
    examples = store.read_frame(
        path,
        "SELECT superseded_by_run, example_id, prediction, score, option_scores "
        "FROM examples_history ORDER BY ALL",
    )
    assert examples.values.tolist() == [["r2", f"e{i}", "A", -0.5, [-0.5]] for i in range(3)] + [
        ["r3", f"e{i}", "C", -0.75, [-0.75]] for i in range(3)
    ]
    assert store.user_query(path, "SELECT count(*) AS n FROM jd_results").n.item() == 0  # no spec
    assert store.user_query(path, "SELECT count(*) AS n FROM examples_history").n.item() == 6


def test_a_failed_attempt_retried_is_kept_in_history(tmp_path: Path) -> None:
    path = tmp_path / "jd.duckdb"
    write(path, ROW, CellResult("c1", "failed", 0.0, 1.0, error="Traceback\nBoom"))
    write(path, {**ROW, "run_id": "r2"}, done())
    failed = store.read_frame(path, "SELECT status, error, superseded_by_run FROM cells_history")
    assert failed.to_dict("records") == [
        {"status": "failed", "error": "Traceback\nBoom", "superseded_by_run": "r2"}
    ]


class _Interrupt(KeyboardInterrupt):
    """Ctrl-C arriving between the statements of a cell's transaction."""


@pytest.mark.parametrize("one_writer", [False, True], ids=["writer per write", "one writer"])
@pytest.mark.parametrize("failure", ["constraint", "interrupt"])
def test_an_interrupted_forced_write_leaves_the_old_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_writer: bool, failure: str
) -> None:
    """The rows moved to history and the new rows are one transaction: an error after the move
    (a duplicate metric; Ctrl-C before the examples) leaves the old result live, history empty."""
    path = tmp_path / "jd.duckdb"
    write(path, ROW, scored(0.5))
    before = {table: all_rows(path, table) for table in ("cells", "results", "examples")}
    rewrite = scored(0.75)
    if failure == "constraint":
        rewrite = replace(rewrite, metrics=rewrite.metrics * 2)
        expected = duckdb.ConstraintException
    else:
        real = writes._insert_rows

        def interrupted(connection: object, table: str, *args: object) -> None:
            if table == "examples":
                raise _Interrupt
            real(connection, table, *args)

        monkeypatch.setattr(writes, "_insert_rows", interrupted)
        expected = _Interrupt
    with _writes(path, one_writer) as (write_cell, source):
        with pytest.raises(expected):
            write_cell({**ROW, "run_id": "r2"}, rewrite)
        assert {table: all_rows(source, table) for table in before} == before
        for table in ("cells", "results", "examples"):
            assert all_rows(source, f"{table}_history") == []
        monkeypatch.undo()
        write_cell({**ROW, "run_id": "r3"}, scored(0.25))  # the store still works
    assert values(path, "results_history") == [("c1", "accuracy", 0.5)]


@pytest.mark.parametrize("count", [3, 40], ids=["VALUES", "DataFrame"])
def test_rows_insert_alike_whatever_their_number(tmp_path: Path, count: int) -> None:
    """A few rows go in as INSERT ... VALUES, many as a DataFrame: the same values, NaN as NULL."""
    path = tmp_path / "jd.duckdb"
    nan = float("nan")
    examples = tuple(
        ExampleRecord(f"e{i:02d}", "h", "A", "B", i % 2 == 0, nan if i == 1 else -i, (nan, -1.0))
        for i in range(count)
    )
    metrics = (MetricValue("accuracy", 0.5, count), MetricValue("pearson", nan, count))
    write(path, ROW, CellResult("c1", "done", 0.0, 1.0, metrics, examples))
    stored = store.read_frame(
        path,
        "SELECT example_id, correct, score IS NULL AS no_score, score, "
        "option_scores::VARCHAR AS option_scores FROM examples ORDER BY example_id",
    )
    assert stored.no_score.tolist() == [i == 1 for i in range(count)]
    assert stored.correct.tolist() == [i % 2 == 0 for i in range(count)]
    assert stored.score.fillna(99).tolist() == [99 if i == 1 else -i for i in range(count)]
    assert stored.option_scores.tolist() == ["[NULL, -1.0]"] * count
    metric = store.read_frame(
        path, "SELECT metric, value IS NULL AS missing FROM results ORDER BY 1"
    )
    assert metric.missing.tolist() == [False, True]
