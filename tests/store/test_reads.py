"""Reading the store: ad hoc SQL is read-only, a file that is not a store is named as such."""

from __future__ import annotations

from pathlib import Path

import pytest

from jdspec import store
from jdspec.errors import StoreError
from tests.store.helpers import ROW, done, write


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
    write(path, ROW, done())
    before = path.read_bytes()
    with pytest.raises(StoreError, match="refused or failed"):
        store.user_query(path, sql)
    assert path.read_bytes() == before
    assert store.user_query(path, "SELECT count(*) AS n FROM results").n.item() == 1


def test_an_absent_store_reads_as_empty_and_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "jd.duckdb"
    assert store.read_frame(path, "SELECT * FROM cells").empty
    assert store.cell_states(path, ["c1"]).empty
    assert store.done_results(path, ["c1"]).empty
    with pytest.raises(StoreError, match="does not exist yet"):
        store.user_query(path, "SELECT 1")
    assert not path.exists()


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "jd.duckdb"
    path.write_text("not a database")
    with pytest.raises(StoreError, match="store"):
        store.read_frame(path, "SELECT 1")
