"""Reading the store: queries as DataFrames, the status of cells, done results, ad hoc SQL.

Each takes a store's path (a short read-only connection) or, inside a run, the run's Writer.
An absent store reads as empty.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from jdspec.errors import StoreError
from jdspec.store.connection import Source, reading, registered, source_path
from jdspec.store.schema import is_absent, results_relation


def read_frame(source: Source, sql: str, parameters: list[Any] | None = None) -> pd.DataFrame:
    """A query as a DataFrame; an absent store reads as empty."""
    if is_absent(source_path(source)):
        return pd.DataFrame()
    with reading(source) as connection:
        return connection.execute(sql, parameters or []).df()


def user_query(path: Path, sql: str) -> pd.DataFrame:
    """Ad hoc SQL, read-only: writes, ATTACH and file access are refused by DuckDB itself."""
    if is_absent(path):
        raise StoreError(f"store {path} does not exist yet; run a spec first")
    with reading(path) as connection:
        connection.execute("SET enable_external_access = false")
        connection.execute("SET lock_configuration = true")
        try:
            return connection.execute(sql).df()
        except duckdb.IOException:
            raise  # a damaged file, not a refused query: reading says so
        except duckdb.Error as error:
            first_line = str(error).splitlines()[0]
            raise StoreError(
                f"--sql refused or failed: the store is read-only here; {first_line}"
            ) from None


def cell_states(source: Source, cell_hashes: list[str]) -> pd.DataFrame:
    """Stored status, run and error of the given cells (absent cells are simply missing)."""
    if is_absent(source_path(source)) or not cell_hashes:
        return pd.DataFrame(columns=["cell_hash", "status", "run_id", "finished_at", "error"])
    wanted = pd.DataFrame({"cell_hash": cell_hashes})
    with reading(source) as connection, registered(connection, "wanted", wanted):
        return connection.execute(
            "SELECT c.cell_hash, c.status, c.run_id, c.finished_at, c.error "
            "FROM cells c JOIN wanted USING (cell_hash)"
        ).df()


def done_results(source: Source, cell_hashes: list[str]) -> pd.DataFrame:
    """Metrics of the given cells that are done, with their cells' flattened columns; a final
    metric has no step (NULL), one measured along the way its step_name and step."""
    path = source_path(source)
    if is_absent(path) or not cell_hashes:
        return pd.DataFrame()
    wanted = pd.DataFrame({"cell_hash": cell_hashes})
    with reading(source) as connection, registered(connection, "wanted", wanted):
        return connection.execute(
            "SELECT c.model, c.method, c.family, c.strength_name, c.strength, c.setting, c.seed, "
            "r.metric, r.step_name, r.step, r.value, r.n, c.cell_hash "
            f"FROM {results_relation(path, connection)} r JOIN cells c USING (cell_hash) "
            "JOIN wanted USING (cell_hash) WHERE c.status = 'done'"
        ).df()
