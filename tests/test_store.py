"""The store: transactional round trips, read-only SQL, the writer lock, schema versions."""

from __future__ import annotations

import subprocess
import sys
import time
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
                "import time, pathlib; from jdspec import store\n"
                f"with store.writer_lock(pathlib.Path({str(path)!r}), 'jd run demo'):\n"
                "    print('held', flush=True); time.sleep(30)"
            ),
        ],
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
    time.sleep(0.1)
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


def test_a_version_1_store_is_migrated_keeping_its_rows(tmp_path: Path) -> None:
    """A store written before cells had batch_size gains the column; old rows keep NULL."""
    path = tmp_path / "jd.duckdb"
    store.write_cell(path, {**ROW, "cell_hash": "old"}, _done("old"))
    with duckdb.connect(str(path)) as connection:
        connection.execute("ALTER TABLE cells DROP COLUMN batch_size")
        connection.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    store.write_cell(path, {**ROW, "cell_hash": "new"}, replace(_done("new"), batch_size=16))
    frame = store.read_frame(path, "SELECT cell_hash, batch_size FROM cells ORDER BY cell_hash")
    assert frame.to_dict("records") == [
        {"cell_hash": "new", "batch_size": 16},
        {"cell_hash": "old", "batch_size": None},
    ]
    version = store.read_frame(path, "SELECT value FROM meta WHERE key = 'schema_version'")
    assert version["value"].tolist() == [str(store.SCHEMA_VERSION)]


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "jd.duckdb"
    path.write_text("not a database")
    with pytest.raises(SpecError, match="store"):
        store.read_frame(path, "SELECT 1")
