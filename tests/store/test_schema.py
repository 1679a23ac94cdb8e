"""Schema versions: a newer store is refused untouched; an older one is read as it is and
migrated by the next writer, keeping its rows."""

from __future__ import annotations

import gzip
from dataclasses import replace
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from jdspec import store
from jdspec.errors import StoreError
from jdspec.results import MetricValue
from tests.store.helpers import ROW, done, scored, values, version, write

DATA = Path(__file__).parent / "data"


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jd.duckdb"
    write(path, ROW, done())
    with duckdb.connect(str(path)) as connection:
        connection.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    before = path.read_bytes()
    with pytest.raises(StoreError, match="schema version 99 is newer"):
        store.read_frame(path, "SELECT 1")
    with pytest.raises(StoreError, match="schema version 99 is newer"):
        write(path, ROW, done())
    assert path.read_bytes() == before


def _downgrade(path: Path, to_version: int) -> None:
    """Make a store look as schema `to_version` left it: no history tables (version 2), no
    batch_size column (version 1)."""
    with duckdb.connect(str(path)) as connection:
        for table in ("cells", "results", "examples"):
            connection.execute(f"DROP TABLE {table}_history")
        if to_version < 2:
            connection.execute("ALTER TABLE cells DROP COLUMN batch_size")
        connection.execute(f"UPDATE meta SET value = '{to_version}' WHERE key = 'schema_version'")


def _columns(path: Path, table: str) -> list[str]:
    return store.read_frame(path, f"DESCRIBE {table}")["column_name"].tolist()


def test_a_version_1_store_is_migrated_keeping_its_rows(tmp_path: Path) -> None:
    """A store written before cells had batch_size gains the column (old rows keep NULL), then
    history tables with it; rerunning a version-1 cell moves it there."""
    path = tmp_path / "jd.duckdb"
    write(path, {**ROW, "cell_hash": "old"}, done("old"))
    _downgrade(path, 1)
    write(path, {**ROW, "cell_hash": "new"}, replace(done("new"), batch_size=16))
    frame = store.read_frame(path, "SELECT cell_hash, batch_size FROM cells ORDER BY cell_hash")
    assert frame.to_dict("records") == [
        {"cell_hash": "new", "batch_size": 16},
        {"cell_hash": "old", "batch_size": None},
    ]
    assert version(path) == str(store.SCHEMA_VERSION)
    write(path, {**ROW, "cell_hash": "old", "run_id": "r2"}, done("old"))
    old = store.read_frame(path, "SELECT run_id, batch_size, superseded_by_run FROM cells_history")
    assert old.to_dict("records") == [
        {"run_id": "r1", "batch_size": None, "superseded_by_run": "r2"}
    ]


def test_a_version_2_store_gains_history_tables_keeping_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "jd.duckdb"
    write(path, ROW, done())
    _downgrade(path, 2)
    with pytest.raises(StoreError, match="cells_history"):
        store.user_query(path, "SELECT * FROM cells_history")  # readers do not migrate
    write(path, {**ROW, "run_id": "r2"}, scored(0.25))
    history = store.read_frame(path, "SELECT * FROM cells_history")
    assert list(history.columns) == [*_columns(path, "cells"), "superseded_at", "superseded_by_run"]
    assert history[["cell_hash", "run_id", "superseded_by_run"]].values.tolist() == [
        ["c1", "r1", "r2"]
    ]
    assert values(path, "results") == [("c1", "accuracy", 0.25)]
    assert values(path, "results_history") == [("c1", "accuracy", 2 / 3)]
    assert version(path) == str(store.SCHEMA_VERSION)


# What the version-3 store (tests/store/data/make_schema3_store.py) holds, with steps split off.
TRAINED = [
    ("trained", "accuracy", None, None, 0.75),
    ("trained", "accuracy", "epoch", 1.0, 0.5),
    ("trained", "accuracy", "epoch", 2.0, 0.75),
    ("trained", "loss", None, None, 0.5),
    ("trained", "loss", "epoch", 1.0, 0.7),
    ("trained", "loss", "epoch", 2.0, 0.5),
]
LINE = [
    ("line", "accuracy", None, None, 0.5),
    ("line", "accuracy", "alpha", 0.5, 0.25),
    ("line", "barrier_loss", None, None, 0.5),
    ("line", "loss", None, None, 0.9),
    ("line", "loss", "alpha", 0.0, 0.6),
    ("line", "loss", "alpha", 0.5, 1.25),
    ("line", "loss", "alpha", 1.0, 0.9),
]
STEPS = "SELECT cell_hash, metric, step_name, step, value FROM {} ORDER BY ALL"


def _rows(frame: pd.DataFrame) -> list[tuple]:
    """Rows with NULLs as None, whatever NaN or NA pandas read them as."""
    frame = frame.astype(object).where(frame.notna(), None)
    return list(frame.itertuples(index=False, name=None))


@pytest.fixture
def version_3_store(tmp_path: Path) -> Path:
    """A store written by jd's store code at schema version 3, steps in its metric names."""
    path = tmp_path / "jd.duckdb"
    path.write_bytes(gzip.decompress((DATA / "schema3.duckdb.gz").read_bytes()))
    return path


def test_a_version_3_store_is_read_with_its_steps_before_it_is_migrated(
    version_3_store: Path,
) -> None:
    path = version_3_store
    before = path.read_bytes()
    done = store.done_results(path, ["trained", "line"])
    columns = ["cell_hash", "metric", "step_name", "step", "value"]
    rows = _rows(done[columns])
    assert len(rows) == len(TRAINED + LINE) and set(rows) == set(TRAINED + LINE)
    assert version(path) == "3" and path.read_bytes() == before  # readers do not migrate


def test_a_version_3_store_is_migrated_splitting_steps_from_metric_names(
    version_3_store: Path,
) -> None:
    path = version_3_store
    with store.writing(path, "a test") as writer, writer.connection():
        pass  # the writer migrates when it opens the store
    assert version(path) == "4"
    rows = _rows(store.read_frame(path, STEPS.format("results")))
    assert len(rows) == len(TRAINED + LINE) and set(rows) == set(TRAINED + LINE)
    history = store.read_frame(path, STEPS.format("results_history"))
    assert _rows(history) == [
        ("trained", "accuracy", None, None, 0.75),  # the first run's rows, before the rerun
        ("trained", "loss", None, None, 0.5),
    ]
    jd_results = store.user_query(
        path, "SELECT sum(value) AS total FROM jd_results WHERE metric = 'loss' AND step IS NULL"
    )
    assert jd_results.total.item() == pytest.approx(0.5 + 0.9)  # the final losses only
    with pytest.raises(duckdb.ConstraintException):  # one row per cell, metric and step
        write(
            path,
            {**ROW, "cell_hash": "x"},
            done("x", (MetricValue("loss", 1.0, 2), MetricValue("loss", 2.0, 2))),
        )
    write(
        path,
        {**ROW, "cell_hash": "y"},
        done("y", (MetricValue("loss", 1.0, 2), MetricValue("loss", 2.0, 2, "epoch", 1.0))),
    )
    stored = store.read_frame(path, "SELECT count(*) AS n FROM results WHERE cell_hash = 'y'")
    assert stored.n.item() == 2
