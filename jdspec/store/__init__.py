"""The DuckDB store: schema, the run lock, short transactional writes, read-only queries.

DuckDB lets one process hold a file open for writing, and then no other process may open it
at all. So the runner holds a lock file (not the database) for the whole run and keeps the
database open only while writes come quickly (`holding`), closing it when idle; readers open it
read-only and retry briefly when a write is in progress. Each cell's rows and its status land in
one transaction; a cell's earlier rows are never overwritten but moved to history tables.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import duckdb
import pandas as pd

from jdspec.errors import SpecError, StoreBusy
from jdspec.results import CellResult, VariantResult

SCHEMA_VERSION = 3
RETRY_SECONDS = 15.0
# The writer's connection (`holding`) closes after IDLE_RELEASE_SECONDS unused, so readers get
# in, and after MAX_HOLD_SECONDS open even while writes keep coming; it then reopens only after
# READER_WINDOW_SECONDS, twice a waiting reader's retry interval (0.05 s, in `_open`).
IDLE_RELEASE_SECONDS = 0.2
MAX_HOLD_SECONDS = 5.0
READER_WINDOW_SECONDS = 0.1
# Superseded rows of a cell: the live table's columns (copied from it when created, so a
# migration that adds a column to a live table must add it here too) plus when and by which run.
HISTORY = [
    f"CREATE TABLE IF NOT EXISTS {table}_history AS SELECT *, "
    f"NULL::TIMESTAMP AS superseded_at, NULL::VARCHAR AS superseded_by_run FROM {table} LIMIT 0"
    for table in ("cells", "results", "examples")
]
# Statements taking a store from schema version N to N + 1, run in order when a writer opens it.
MIGRATIONS = {1: ["ALTER TABLE cells ADD COLUMN batch_size INTEGER"], 2: HISTORY}

LIVE_TABLES = """
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
CREATE TABLE IF NOT EXISTS results (
    cell_hash VARCHAR, metric VARCHAR, value DOUBLE, n INTEGER, PRIMARY KEY (cell_hash, metric));
CREATE TABLE IF NOT EXISTS examples (
    cell_hash VARCHAR, example_id VARCHAR, prompt_hash VARCHAR, prediction VARCHAR,
    gold VARCHAR, correct BOOLEAN, score DOUBLE, option_scores DOUBLE[],
    PRIMARY KEY (cell_hash, example_id));
"""
VIEWS = """
CREATE OR REPLACE VIEW jd_results AS
    SELECT s.spec, c.model, c.method, c.family, c.strength_name, c.strength, c.setting,
           s.level, s.difficulty, c.seed, r.metric, r.value, r.n, c.cell_hash
    FROM results r JOIN cells c USING (cell_hash) JOIN spec_cells s USING (cell_hash)
    WHERE c.status = 'done';
"""
SCHEMA = LIVE_TABLES + "".join(f"{statement};\n" for statement in HISTORY) + VIEWS


def default_path() -> Path:
    return Path(os.environ.get("JD_STORE", "store/jd.duckdb"))


@contextmanager
def connect(path: Path, read_only: bool) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open briefly, retrying while another process holds the file; close on exit. Within
    `holding(path)`, lend this process's writer connection instead (it reads as well)."""
    held = _HELD.get(_held_key(path))
    try:
        if held is not None:
            with held.use() as connection:
                yield connection
            return
        connection = _open(path, read_only)
        try:
            yield connection
        finally:
            connection.close()
    except duckdb.IOException as error:  # a store cut short opens, then fails to read a block
        first_line = str(error).splitlines()[0]
        raise SpecError(
            f"store {path}: cannot read it; is the file damaged? ({first_line})"
        ) from None


def _open(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    if not read_only and is_absent(path) and path.exists():
        path.unlink()  # an empty file from a run killed while creating it holds nothing
    deadline = time.monotonic() + RETRY_SECONDS
    while True:
        try:
            connection = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as error:
            if "lock" not in str(error).lower() or time.monotonic() > deadline:
                raise SpecError(f"store {path}: cannot open it: {error}") from None
            time.sleep(0.05)
        except duckdb.Error as error:
            raise SpecError(f"store {path}: not a readable jd store ({error})") from None
    try:
        if not read_only:
            _migrate(path, connection)
        else:
            _check_version(path, connection)
    except BaseException:
        connection.close()
        raise
    return connection


def _migrate(path: Path, connection: duckdb.DuckDBPyConnection) -> None:
    """Bring an older store up to SCHEMA_VERSION (migrations first: SCHEMA's history tables copy
    the live tables' columns), then create what is missing; a new store gets the version."""
    try:
        found = _first_row(connection, "SELECT value FROM meta WHERE key = 'schema_version'")
    except duckdb.CatalogException:
        found = None  # a new store: no meta table yet
        tables = _first_row(connection, "SELECT count(*) FROM duckdb_tables()")
        if tables and tables[0]:
            raise SpecError(
                f"store {path}: a DuckDB database with tables but without jd's meta table, so "
                "not a jd store; give --store a new path"
            ) from None
    if found is not None:
        _check_version(path, connection)  # refuses a newer store before anything changes
        _run_migrations(connection, int(found[0]))
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


def _check_version(path: Path, connection: duckdb.DuckDBPyConnection) -> None:
    try:
        found = _first_row(connection, "SELECT value FROM meta WHERE key = 'schema_version'")
    except duckdb.CatalogException:
        raise SpecError(f"store {path}: not a jd store (no meta table)") from None
    if found and int(found[0]) > SCHEMA_VERSION:
        raise SpecError(
            f"store {path}: schema version {found[0]} is newer than this jd's "
            f"({SCHEMA_VERSION}); upgrade jd to read it"
        )


def _first_row(
    connection: duckdb.DuckDBPyConnection, sql: str, parameters: list[Any] | None = None
) -> tuple | None:
    """The first row or None, fetching everything: DuckDB refuses new work on a half-read result."""
    rows = connection.execute(sql, parameters or []).fetchall()
    return rows[0] if rows else None


def _held_key(path: Path) -> str:
    return os.path.abspath(path)


class _HeldConnection:
    """The single writer's connection, kept open across writes that come quickly (opening
    DuckDB costs tens of milliseconds) and closed when idle, so readers of the file get in."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()  # held while lent, and by the watcher while it closes
        self.lent_to: int | None = None  # the thread using it
        self.connection: duckdb.DuckDBPyConnection | None = None
        self.opened_at = self.used_at = self.released_at = 0.0
        self.stopped = threading.Event()
        self.watcher = threading.Thread(target=self._release_when_idle, daemon=True)

    @contextmanager
    def use(self) -> Iterator[duckdb.DuckDBPyConnection]:
        assert self.lent_to != threading.get_ident(), "nested store calls would deadlock"
        with self.lock:
            if self.connection is None:
                time.sleep(max(0.0, self.released_at + READER_WINDOW_SECONDS - time.monotonic()))
                self.connection = _open(self.path, read_only=False)
                self.opened_at = time.monotonic()
            self.lent_to = threading.get_ident()
            try:
                yield self.connection
            except BaseException:
                self.close()  # rolls back a transaction left open; the next use reopens
                raise
            finally:
                self.lent_to = None
                self.used_at = time.monotonic()
                if self.connection and self.used_at - self.opened_at > MAX_HOLD_SECONDS:
                    self.close()
                    self.released_at = self.used_at

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def _release_when_idle(self) -> None:
        while not self.stopped.wait(IDLE_RELEASE_SECONDS / 2):
            if not self.lock.acquire(blocking=False):
                continue  # lent right now
            try:
                if time.monotonic() - self.used_at > IDLE_RELEASE_SECONDS:
                    self.close()
            finally:
                self.lock.release()


_HELD: dict[str, _HeldConnection] = {}


@contextmanager
def holding(path: Path) -> Iterator[None]:
    """Within: this process's writes (and reads) of `path` share one connection while they come
    quickly, each still in its own transaction. For the writer holding `writer_lock`."""
    key = _held_key(path)
    assert key not in _HELD, f"store {path} is held already"
    held = _HeldConnection(path)
    _HELD[key] = held
    held.watcher.start()
    try:
        yield
    finally:
        held.stopped.set()
        held.watcher.join()
        del _HELD[key]
        with held.lock:
            held.close()


@dataclass(frozen=True)
class LockHolder:
    pid: int
    description: str


@contextmanager
def writer_lock(path: Path, description: str) -> Iterator[None]:
    """Hold `<store>.lock` for a whole run; a second runner is refused at once, naming us.

    flock is released by the kernel when the process dies, so a killed run leaves no stale lock.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = Path(f"{path}.lock")
    handle = open(lock_path, "a+")  # noqa: SIM115  (held for the whole run)
    try:
        if not _try_exclusive(handle):
            holder = read_lock_holder(path)
            who = holder.description if holder else "another process"
            raise StoreBusy(
                f"store {path} is being written by {who}; wait for it to finish "
                f"or stop it, then run again (reading commands work meanwhile)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "description": description}))
        handle.flush()
        yield
    finally:
        handle.close()


def _try_exclusive(handle: IO[str], attempts: int = 10) -> bool:
    """Take the lock, retrying for half a second: `jd status` holds it shared for an instant."""
    for _ in range(attempts):
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            time.sleep(0.05)
    return False


def read_lock_holder(path: Path) -> LockHolder | None:
    """Who holds the writer lock now, or None when no run is going."""
    lock_path = Path(f"{path}.lock")
    if not lock_path.exists():
        return None
    with open(lock_path) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                info = json.loads(Path(lock_path).read_text() or "{}")
            except json.JSONDecodeError:
                info = {}
            pid = int(info.get("pid", 0))
            return LockHolder(pid, f"jd run (pid {pid}: {info.get('description', '?')})")
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


def is_absent(path: Path) -> bool:
    """No store yet: no file, or the empty file a run killed while creating it leaves behind
    (DuckDB creates the file before writing its header); the next writer starts it afresh."""
    return not path.exists() or (path.is_file() and path.stat().st_size == 0)


def read_frame(path: Path, sql: str, parameters: list[Any] | None = None) -> pd.DataFrame:
    """A read-only query as a DataFrame; an absent store reads as empty."""
    if is_absent(path):
        return pd.DataFrame()
    with connect(path, read_only=True) as connection:
        return connection.execute(sql, parameters or []).df()


def user_query(path: Path, sql: str) -> pd.DataFrame:
    """Ad hoc SQL, read-only: writes, ATTACH and file access are refused by DuckDB itself."""
    if is_absent(path):
        raise SpecError(f"store {path} does not exist yet; run a spec first")
    assert _held_key(path) not in _HELD, "ad hoc SQL would lock the writer's configuration"
    with connect(path, read_only=True) as connection:
        connection.execute("SET enable_external_access = false")
        connection.execute("SET lock_configuration = true")
        try:
            return connection.execute(sql).df()
        except duckdb.IOException:
            raise  # a damaged file, not a refused query: connect says so
        except duckdb.Error as error:
            first_line = str(error).splitlines()[0]
            raise SpecError(
                f"--sql refused or failed: the store is read-only here; {first_line}"
            ) from None


def cell_states(path: Path, cell_hashes: list[str]) -> pd.DataFrame:
    """Stored status, run and error of the given cells (absent cells are simply missing)."""
    if is_absent(path) or not cell_hashes:
        return pd.DataFrame(columns=["cell_hash", "status", "run_id", "finished_at", "error"])
    wanted = pd.DataFrame({"cell_hash": cell_hashes})
    with connect(path, read_only=True) as connection, _registered(connection, "wanted", wanted):
        return connection.execute(
            "SELECT c.cell_hash, c.status, c.run_id, c.finished_at, c.error "
            "FROM cells c JOIN wanted USING (cell_hash)"
        ).df()


def begin_run(path: Path, run: dict[str, Any]) -> None:
    """Record a run's provenance before its first cell."""
    with connect(path, read_only=False) as connection:
        columns = ", ".join(run)
        marks = ", ".join("?" for _ in run)
        connection.execute(f"INSERT INTO runs ({columns}) VALUES ({marks})", list(run.values()))


def write_members(path: Path, members: pd.DataFrame) -> None:
    """Which cells a spec holds, with its level labels and difficulties (spec-specific)."""
    with connect(path, read_only=False) as connection, _registered(connection, "members", members):
        connection.execute(
            "INSERT OR REPLACE INTO spec_cells SELECT spec, cell_hash, level, difficulty "
            "FROM members"
        )


def done_results(path: Path, cell_hashes: list[str]) -> pd.DataFrame:
    """Metrics of the given cells that are done, with their cells' flattened columns."""
    if is_absent(path) or not cell_hashes:
        return pd.DataFrame()
    wanted = pd.DataFrame({"cell_hash": cell_hashes})
    with connect(path, read_only=True) as connection, _registered(connection, "wanted", wanted):
        return connection.execute(
            "SELECT c.model, c.method, c.family, c.strength_name, c.strength, c.setting, c.seed, "
            "r.metric, r.value, r.n, c.cell_hash FROM results r JOIN cells c USING (cell_hash) "
            "JOIN wanted USING (cell_hash) WHERE c.status = 'done'"
        ).df()


def finish_run(path: Path, run_id: str, status: str, done: int, failed: int) -> None:
    with connect(path, read_only=False) as connection:
        connection.execute(
            "UPDATE runs SET status = ?, finished_at = now(), cells_done = ?, cells_failed = ? "
            "WHERE run_id = ?",
            [status, done, failed, run_id],
        )


def write_variant(path: Path, result: VariantResult, run_id: str) -> None:
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
    with connect(path, read_only=False) as connection:
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
        with _registered(connection, "matrices", matrices):
            connection.execute("INSERT OR IGNORE INTO variant_matrices SELECT * FROM matrices")
        connection.execute("COMMIT")


def write_cell(path: Path, row: dict[str, Any], result: CellResult) -> None:
    """A cell's status, metrics and examples in one transaction: all of them or none.

    A cell stored before (a failed attempt retried, a done one rerun with --force) first moves
    to the history tables in that same transaction: a crash leaves the old rows or the new ones.
    """
    with connect(path, read_only=False) as connection:
        connection.execute("BEGIN")
        previous = _first_row(
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


RESULT_COLUMNS = ("cell_hash", "metric", "value", "n")
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


def _nan_as_null(value: Any) -> Any:
    """NaN as None, which DuckDB stores as NULL, as it stores a DataFrame's NaN."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, list):
        return [_nan_as_null(item) for item in value]
    return value


def _metric_rows(result: CellResult) -> list[tuple]:
    return [(result.cell_hash, m.name, m.value, m.n) for m in result.metrics]


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
    if not rows:
        return
    if len(rows) <= VALUES_ROWS:
        row_marks = "(" + ", ".join("?" for _ in columns) + ")"
        connection.execute(
            f"INSERT INTO {table} VALUES " + ", ".join([row_marks] * len(rows)),
            [_nan_as_null(value) for row in rows for value in row],
        )
        return
    with _registered(connection, "rows_frame", pd.DataFrame(rows, columns=list(columns))):
        connection.execute(f"INSERT INTO {table} SELECT * FROM rows_frame")


@contextmanager
def _registered(
    connection: duckdb.DuckDBPyConnection, name: str, frame: pd.DataFrame
) -> Iterator[None]:
    """`frame` as the view `name` for a query; unregistered after, as the writer's connection
    may outlive this call (`holding`)."""
    connection.register(name, frame)
    try:
        yield
    finally:
        connection.unregister(name)
