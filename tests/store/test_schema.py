"""Schema versions: a newer store is refused untouched; an older one is read as it is and
migrated by the next writer, keeping its rows."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from jdspec import store
from jdspec.errors import StoreError
from tests.store.helpers import ROW, done, scored, values, version, write


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
