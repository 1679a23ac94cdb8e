"""The store's tables, its schema version, and the migrations that bring an older store up to it.

Version 4 gave results their step: metrics measured along the way (each epoch of a fine-tuning
run, each point of a connectivity line) were stored as metrics named `accuracy@epoch1` or
`loss@alpha0.5`; now the metric is the bare measure, and `step_name` ('epoch', 'alpha') and
`step` say where along the way it was measured, both NULL for a cell's final metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from jdspec.errors import StoreError

SCHEMA_VERSION = 4
# Superseded rows of a cell: the live table's columns (copied from it when created, so a
# migration that adds a column to a live table must add it here too) plus when and by which run.
HISTORY = [
    f"CREATE TABLE IF NOT EXISTS {table}_history AS SELECT *, "
    f"NULL::TIMESTAMP AS superseded_at, NULL::VARCHAR AS superseded_by_run FROM {table} LIMIT 0"
    for table in ("cells", "results", "examples")
]
RESULTS = """
CREATE TABLE IF NOT EXISTS results (
    cell_hash VARCHAR, metric VARCHAR, step_name VARCHAR, step DOUBLE, value DOUBLE, n INTEGER);
"""
# One row per cell, metric and step; a final metric's NULL step counts as one value (-1).
RESULTS_KEY = (
    "CREATE UNIQUE INDEX IF NOT EXISTS results_key "
    "ON results (cell_hash, metric, coalesce(step, -1))"
)
# What version 3 stored for a metric measured along the way: `<metric>@<step_name><step>`.
STEP_NAME = r"^(.+)@([a-z]+)([-+.0-9e]+)$"


def steps_from_names(metric: str = "metric") -> str:
    """SQL for the columns metric, step_name, step of a version-3 metric name: the name before
    '@' and the step after it, or the name itself and NULLs for a final metric."""
    part = f"regexp_extract({metric}, '{STEP_NAME}', {{}})"
    return (
        f"coalesce(nullif({part.format(1)}, ''), {metric}) AS metric, "
        f"nullif({part.format(2)}, '') AS step_name, "
        f"CAST(nullif({part.format(3)}, '') AS DOUBLE) AS step"
    )


def _with_steps(table: str, carried: str = "") -> list[str]:
    """Rebuild a version-3 results table with the step split off each metric name (a new table,
    not new columns: the live table's primary key (cell_hash, metric) no longer holds)."""
    return [
        f"CREATE TABLE {table}_with_steps AS SELECT cell_hash, {steps_from_names()}, value, n"
        f"{carried} FROM {table}",
        f"DROP TABLE {table}",
        f"ALTER TABLE {table}_with_steps RENAME TO {table}",
    ]


# Statements taking a store from schema version N to N + 1, run in order when a writer opens it.
MIGRATIONS = {
    1: ["ALTER TABLE cells ADD COLUMN batch_size INTEGER"],
    2: HISTORY,
    3: [
        "DROP VIEW IF EXISTS jd_results",
        *_with_steps("results"),
        RESULTS_KEY,
        *_with_steps("results_history", ", superseded_at, superseded_by_run"),
    ],
}

LIVE_TABLES = (
    """
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY, spec VARCHAR, spec_hash VARCHAR, command VARCHAR,
    status VARCHAR, started_at TIMESTAMP, finished_at TIMESTAMP, pid INTEGER, host VARCHAR,
    jd_version VARCHAR, git_sha VARCHAR, python VARCHAR, packages JSON, device VARCHAR,
    seed INTEGER, cells_planned INTEGER, cells_done INTEGER, cells_failed INTEGER);
CREATE TABLE IF NOT EXISTS spec_cells (
    spec VARCHAR, cell_hash VARCHAR, level VARCHAR, difficulty DOUBLE,
    PRIMARY KEY (spec, cell_hash));
CREATE TABLE IF NOT EXISTS cells (
    cell_hash VARCHAR PRIMARY KEY, variant_hash VARCHAR, status VARCHAR, run_id VARCHAR,
    model VARCHAR, method VARCHAR, family VARCHAR, strength_name VARCHAR, strength DOUBLE,
    setting VARCHAR, level VARCHAR, seed INTEGER, cell JSON, error VARCHAR, attempts INTEGER,
    started_at TIMESTAMP, finished_at TIMESTAMP, seconds DOUBLE, batch_size INTEGER);
CREATE TABLE IF NOT EXISTS variants (
    variant_hash VARCHAR PRIMARY KEY, method VARCHAR, sparsity DOUBLE,
    compression_seconds DOUBLE, notes VARCHAR, run_id VARCHAR, created_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS variant_matrices (
    variant_hash VARCHAR, matrix VARCHAR, numel BIGINT, zeros BIGINT, sparsity DOUBLE,
    bits DOUBLE, rank INTEGER, PRIMARY KEY (variant_hash, matrix));
"""
    + RESULTS
    + f"{RESULTS_KEY};\n"
    + """
CREATE TABLE IF NOT EXISTS examples (
    cell_hash VARCHAR, example_id VARCHAR, prompt_hash VARCHAR, prediction VARCHAR,
    gold VARCHAR, correct BOOLEAN, score DOUBLE, option_scores DOUBLE[],
    PRIMARY KEY (cell_hash, example_id));
"""
)
VIEWS = """
CREATE OR REPLACE VIEW jd_results AS
    SELECT s.spec, c.model, c.method, c.family, c.strength_name, c.strength, c.setting,
           s.level, s.difficulty, c.seed, r.metric, r.step_name, r.step, r.value, r.n,
           c.cell_hash
    FROM results r JOIN cells c USING (cell_hash) JOIN spec_cells s USING (cell_hash)
    WHERE c.status = 'done';
"""
SCHEMA = LIVE_TABLES + "".join(f"{statement};\n" for statement in HISTORY) + VIEWS


def prepare(path: Path, connection: duckdb.DuckDBPyConnection) -> None:
    """Bring a store opened for writing up to SCHEMA_VERSION (migrations first: SCHEMA's history
    tables copy the live tables' columns), then create what is missing; a new store gets the
    version."""
    try:
        found = first_row(connection, "SELECT value FROM meta WHERE key = 'schema_version'")
    except duckdb.CatalogException:
        found = None  # a new store: no meta table yet
        tables = first_row(connection, "SELECT count(*) FROM duckdb_tables()")
        if tables and tables[0]:
            raise StoreError(
                f"store {path}: a DuckDB database with tables but without jd's meta table, so "
                "not a jd store; give --store a new path"
            ) from None
    if found is not None:
        _run_migrations(connection, stored_version(path, connection))
    connection.execute(SCHEMA)
    if found is None:
        connection.execute("INSERT INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])


def _run_migrations(connection: duckdb.DuckDBPyConnection, version: int) -> None:
    if version >= SCHEMA_VERSION:
        return
    connection.execute("BEGIN")
    for step in range(version, SCHEMA_VERSION):
        for statement in MIGRATIONS[step]:
            connection.execute(statement)
    connection.execute(
        "UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION)]
    )
    connection.execute("COMMIT")


def stored_version(path: Path, connection: duckdb.DuckDBPyConnection) -> int:
    """The store's schema version; a store newer than this jd is refused before anything
    changes."""
    try:
        found = first_row(connection, "SELECT value FROM meta WHERE key = 'schema_version'")
    except duckdb.CatalogException:
        raise StoreError(f"store {path}: not a jd store (no meta table)") from None
    version = int(found[0]) if found else SCHEMA_VERSION
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"store {path}: schema version {version} is newer than this jd's "
            f"({SCHEMA_VERSION}); upgrade jd to read it"
        )
    return version


def is_absent(path: Path) -> bool:
    """No store yet: no file, or the empty file a run killed while creating it leaves behind
    (DuckDB creates the file before writing its header); the next writer starts it afresh."""
    return not path.exists() or (path.is_file() and path.stat().st_size == 0)


def first_row(
    connection: duckdb.DuckDBPyConnection, sql: str, parameters: list[Any] | None = None
) -> tuple | None:
    """The first row or None, fetching everything: DuckDB refuses new work on a half-read result."""
    rows = connection.execute(sql, parameters or []).fetchall()
    return rows[0] if rows else None


def results_relation(path: Path, connection: duckdb.DuckDBPyConnection) -> str:
    """What to read results from: the table, or for a store older than version 4 (read as it is
    until a run migrates it) its rows with the steps split from the metric names."""
    if stored_version(path, connection) >= 4:
        return "results"
    return f"(SELECT cell_hash, {steps_from_names()}, value, n FROM results)"
