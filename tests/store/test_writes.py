"""The store: transactional round trips, history of superseded rows, read-only SQL, the writer
lock and its held connection, schema versions."""

from __future__ import annotations

import subprocess
import sys
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from jdspec import store
from jdspec.compress.core import CompressionRecord, MatrixStats
from jdspec.errors import SpecError, StoreBusy
from jdspec.results import CellResult, ExampleRecord, MetricValue, VariantResult

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


def _done(cell_hash: str = "c1") -> CellResult:
    examples = tuple(
        ExampleRecord(f"e{i}", "h", "A", "B", i % 2 == 0, -1.5, (-1.5, -2.0)) for i in range(3)
    )
    return CellResult(
        cell_hash, "done", 1_700_000_000.0, 2.5, (MetricValue("accuracy", 2 / 3, 3),), examples
    )


def test_cell_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "jd.duckdb"
    store.write_cell(path, ROW, _done())
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
    store.write_cell(path, ROW, CellResult("c1", "failed", 0.0, 1.0, error="Traceback\nBoom"))
    assert store.cell_states(path, ["c1"]).status.tolist() == ["failed"]
    store.write_cell(path, ROW, _done())
    states = store.read_frame(path, "SELECT status, attempts, error FROM cells")
    assert states.to_dict("records") == [{"status": "done", "attempts": 2, "error": None}]


def test_a_failing_write_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "jd.duckdb"
    store.write_cell(path, ROW, _done())
    with pytest.raises(duckdb.ConstraintException):
        store.write_cell(path, {**ROW, "cell_hash": "c2"}, _done("c1"))  # duplicate results
    assert store.read_frame(path, "SELECT count(*) AS n FROM cells").n.item() == 1


def test_variant_matrices(tmp_path: Path) -> None:
    path = tmp_path / "jd.duckdb"
    record = CompressionRecord("magnitude", (MatrixStats("a", 10, 5), MatrixStats("b", 30, 9)))
    store.write_variant(path, VariantResult("v1", record), "r1")
    frame = store.read_frame(path, "SELECT sparsity FROM variants")
    assert frame.sparsity.item() == pytest.approx(14 / 40)
    assert store.read_frame(path, "SELECT sum(zeros) AS z FROM variant_matrices").z.item() == 14


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM results",
        "DROP TABLE cells",
        "UPDATE cells SET status = 'x'",
        "ATTACH 'other.duckdb' AS other",
        "COPY cells TO 'leak.csv'",
        "INSERT INTO meta VALUES ('a', 'b')",
    ],
)
def test_user_sql_is_read_only(tmp_path: Path, sql: str) -> None:
    path = tmp_path / "jd.duckdb"
    store.write_cell(path, ROW, _done())
    before = path.read_bytes()
    with pytest.raises(SpecError, match="refused or failed"):
        store.user_query(path, sql)
    assert path.read_bytes() == before
    assert store.user_query(path, "SELECT count(*) AS n FROM results").n.item() == 1


def test_second_writer_is_refused_naming_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "jd.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, pathlib; from jdspec import store\n"
                f"with store.writer_lock(pathlib.Path({str(path)!r}), 'jd run demo'):\n"
                "    print('held', flush=True); sys.stdin.read()"  # holds until killed
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        busy = pytest.raises(StoreBusy, match=rf"pid {holder.pid}: jd run demo")
        with busy, store.writer_lock(path, "second"):
            pass
        assert store.read_lock_holder(path).pid == holder.pid
    finally:
        holder.kill()
        holder.wait()
    assert store.read_lock_holder(path) is None  # the kernel freed the dead holder's lock
    with store.writer_lock(path, "after"):
        pass


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jd.duckdb"
    store.write_cell(path, ROW, _done())
    with duckdb.connect(str(path)) as connection:
        connection.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(SpecError, match="schema version 99 is newer"):
        store.read_frame(path, "SELECT 1")


def _downgrade(path: Path, version: int) -> None:
    """Make a store look as schema `version` left it: no history tables (version 3), no
    batch_size column (version 2)."""
    with duckdb.connect(str(path)) as connection:
        for table in ("cells", "results", "examples"):
            connection.execute(f"DROP TABLE {table}_history")
        if version < 2:
            connection.execute("ALTER TABLE cells DROP COLUMN batch_size")
        connection.execute(f"UPDATE meta SET value = '{version}' WHERE key = 'schema_version'")


def test_a_version_1_store_is_migrated_keeping_its_rows(tmp_path: Path) -> None:
    """A store written before cells had batch_size gains the column (old rows keep NULL), then
    history tables with it; rerunning a version-1 cell moves it there."""
    path = tmp_path / "jd.duckdb"
    store.write_cell(path, {**ROW, "cell_hash": "old"}, _done("old"))
    _downgrade(path, 1)
    store.write_cell(path, {**ROW, "cell_hash": "new"}, replace(_done("new"), batch_size=16))
    frame = store.read_frame(path, "SELECT cell_hash, batch_size FROM cells ORDER BY cell_hash")
    assert frame.to_dict("records") == [
        {"cell_hash": "new", "batch_size": 16},
        {"cell_hash": "old", "batch_size": None},
    ]
    version = store.read_frame(path, "SELECT value FROM meta WHERE key = 'schema_version'")
    assert version["value"].tolist() == [str(store.SCHEMA_VERSION)] == ["3"]
    store.write_cell(path, {**ROW, "cell_hash": "old", "run_id": "r2"}, _done("old"))
    old = store.read_frame(path, "SELECT run_id, batch_size, superseded_by_run FROM cells_history")
    assert old.to_dict("records") == [
        {"run_id": "r1", "batch_size": None, "superseded_by_run": "r2"}
    ]


def test_a_version_2_store_gains_history_tables_keeping_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "jd.duckdb"
    store.write_cell(path, ROW, _done())
    _downgrade(path, 2)
    with pytest.raises(SpecError, match="cells_history"):
        store.user_query(path, "SELECT * FROM cells_history")  # readers do not migrate
    store.write_cell(path, {**ROW, "run_id": "r2"}, _scored(0.25))
    history = store.read_frame(path, "SELECT * FROM cells_history")
    assert list(history.columns) == [*_columns(path, "cells"), "superseded_at", "superseded_by_run"]
    assert history[["cell_hash", "run_id", "superseded_by_run"]].values.tolist() == [
        ["c1", "r1", "r2"]
    ]
    assert _values(path, "results") == [("c1", "accuracy", 0.25)]
    assert _values(path, "results_history") == [("c1", "accuracy", 2 / 3)]
    version = store.read_frame(path, "SELECT value FROM meta WHERE key = 'schema_version'")
    assert version["value"].tolist() == ["3"]


def _columns(path: Path, table: str) -> list[str]:
    return store.read_frame(path, f"DESCRIBE {table}")["column_name"].tolist()


def _values(path: Path, table: str) -> list[tuple]:
    frame = store.read_frame(path, f"SELECT cell_hash, metric, value FROM {table} ORDER BY ALL")
    return list(frame.itertuples(index=False, name=None))


def _scored(accuracy: float, prediction: str = "A") -> CellResult:
    """A done c1 whose metric and examples' predictions say which write it came from."""
    examples = tuple(
        ExampleRecord(f"e{i}", "h", prediction, "B", False, -accuracy, (-accuracy,))
        for i in range(3)
    )
    return CellResult(
        "c1", "done", 1.0, accuracy, (MetricValue("accuracy", accuracy, 3),), examples
    )


@pytest.mark.parametrize("held", [False, True], ids=["connection per write", "held connection"])
def test_a_forced_rewrite_keeps_every_earlier_result_in_history(tmp_path: Path, held: bool) -> None:
    path = tmp_path / "jd.duckdb"
    with store.holding(path) if held else nullcontext():
        store.write_cell(path, {**ROW, "run_id": "r1"}, _scored(0.5, "A"))
        store.write_cell(path, {**ROW, "run_id": "r2"}, _scored(0.75, "C"))
        store.write_cell(path, {**ROW, "run_id": "r3"}, _scored(0.25, "D"))
    assert _values(path, "results") == [("c1", "accuracy", 0.25)]
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
    store.write_cell(path, ROW, CellResult("c1", "failed", 0.0, 1.0, error="Traceback\nBoom"))
    store.write_cell(path, {**ROW, "run_id": "r2"}, _done())
    failed = store.read_frame(path, "SELECT status, error, superseded_by_run FROM cells_history")
    assert failed.to_dict("records") == [
        {"status": "failed", "error": "Traceback\nBoom", "superseded_by_run": "r2"}
    ]


class _Interrupt(KeyboardInterrupt):
    """Ctrl-C arriving between the statements of a cell's transaction."""


@pytest.mark.parametrize("held", [False, True], ids=["connection per write", "held connection"])
@pytest.mark.parametrize("failure", ["constraint", "interrupt"])
def test_an_interrupted_forced_write_leaves_the_old_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, held: bool, failure: str
) -> None:
    """The rows moved to history and the new rows are one transaction: an error after the move
    (a duplicate metric; Ctrl-C before the examples) leaves the old result live, history empty."""
    path = tmp_path / "jd.duckdb"
    store.write_cell(path, ROW, _scored(0.5))
    before = {table: _all_rows(path, table) for table in ("cells", "results", "examples")}
    rewrite = _scored(0.75)
    if failure == "constraint":
        rewrite = replace(rewrite, metrics=rewrite.metrics * 2)
        expected = duckdb.ConstraintException
    else:
        real = store._insert_rows

        def interrupted(connection: object, table: str, *args: object) -> None:
            if table == "examples":
                raise _Interrupt
            real(connection, table, *args)

        monkeypatch.setattr(store, "_insert_rows", interrupted)
        expected = _Interrupt
    with store.holding(path) if held else nullcontext():
        with pytest.raises(expected):
            store.write_cell(path, {**ROW, "run_id": "r2"}, rewrite)
        assert {table: _all_rows(path, table) for table in before} == before
        for table in ("cells", "results", "examples"):
            assert _all_rows(path, f"{table}_history") == []
        monkeypatch.undo()
        store.write_cell(path, {**ROW, "run_id": "r3"}, _scored(0.25))  # the store still works
    assert _values(path, "results_history") == [("c1", "accuracy", 0.5)]


def _all_rows(path: Path, table: str) -> list[tuple]:
    frame = store.read_frame(path, f"SELECT * FROM {table} ORDER BY ALL")
    return [tuple(map(str, row)) for row in frame.itertuples(index=False, name=None)]


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
    store.write_cell(path, ROW, CellResult("c1", "done", 0.0, 1.0, metrics, examples))
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


def test_a_held_connection_lets_readers_in_once_idle(tmp_path: Path) -> None:
    """Within `holding`, another process still reads the store between writes."""
    path = tmp_path / "jd.duckdb"
    reader = [
        sys.executable,
        "-c",
        "import pathlib; from jdspec import store\n"
        f"print(store.read_frame(pathlib.Path({str(path)!r}), 'SELECT count(*) AS n FROM cells')"
        ".n.item())",
    ]
    with store.holding(path):
        store.write_cell(path, ROW, _done())
        assert store.cell_states(path, ["c1"]).status.tolist() == ["done"]  # this process reads
        read = subprocess.run(reader, capture_output=True, text=True, timeout=60)
        assert read.returncode == 0, read.stderr
        assert read.stdout.strip() == "1"
        store.write_cell(path, {**ROW, "cell_hash": "c2"}, _done("c2"))  # reopens after the reader
    assert store.read_frame(path, "SELECT count(*) AS n FROM cells").n.item() == 2


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "jd.duckdb"
    path.write_text("not a database")
    with pytest.raises(SpecError, match="store"):
        store.read_frame(path, "SELECT 1")
