"""Connections to the store's DuckDB file: short read-only ones for readers, and the `Writer`,
the one read-write connection a run owns.

DuckDB lets one process hold a file open for writing, and then no other process may open it at
all; several readers may share it. An open that fails is waited out (up to RETRY_SECONDS) only
when the lock files say who is in (jdspec/store/lock.py): a run, for a reader; readers, for the
writer. Any other failure is reported at once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd

from jdspec.errors import StoreError
from jdspec.store import lock, schema

RETRY_SECONDS = 15.0
RETRY_PAUSE_SECONDS = 0.05
# The writer's connection closes after IDLE_RELEASE_SECONDS unused (when the run looks in) and
# after MAX_HOLD_SECONDS open even while writes keep coming; it then reopens only after
# READER_WINDOW_SECONDS, twice a waiting reader's pause, so the reader gets in.
IDLE_RELEASE_SECONDS = 0.2
MAX_HOLD_SECONDS = 5.0
READER_WINDOW_SECONDS = 2 * RETRY_PAUSE_SECONDS


def connect(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    """Open the file, waiting while another jd process is in it. A writer brings an older store
    up to the schema version; a reader reads an older store as it is, and refuses a newer one."""
    if not read_only and schema.is_absent(path) and path.exists():
        path.unlink()  # an empty file from a run killed while creating it holds nothing
    connection = _open(path, read_only, time.monotonic() + RETRY_SECONDS)
    try:
        if read_only:
            schema.stored_version(path, connection)
        else:
            schema.prepare(path, connection)
    except BaseException:
        connection.close()
        raise
    return connection


def _open(path: Path, read_only: bool, deadline: float) -> duckdb.DuckDBPyConnection:
    """duckdb.connect, retried while the lock files say another jd process is in the file, and
    once more when they do not: a reader may have closed it just now."""
    retried = False
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as error:
            busy = _others_inside(path, read_only)
            if (not busy and retried) or time.monotonic() > deadline:
                why = "in use by another jd process" if busy else "cannot open it"
                first_line = str(error).splitlines()[0]
                raise StoreError(f"store {path}: {why}: {first_line}") from None
            retried = retried or not busy
        except duckdb.Error as error:
            raise StoreError(f"store {path}: not a readable jd store ({error})") from None
        pause_while_busy(path)


def _others_inside(path: Path, read_only: bool) -> bool:
    """Who may hold the file: a run, for a reader; readers, for the writer."""
    return lock.read_lock_holder(path) is not None if read_only else lock.readers_active(path)


def pause_while_busy(path: Path) -> None:
    """Wait a moment before trying the file again (a test hook: it says the store was busy)."""
    time.sleep(RETRY_PAUSE_SECONDS)


class Writer:
    """The run's read-write connection to its store: the run owns it, and only it writes.

    Opening DuckDB costs tens of milliseconds, so the connection stays open while writes come
    quickly. Meanwhile no other process can read the store, so it is closed when the run is
    about to wait (`release`: a model to load, remote tasks to wait for), when the run finds it
    unused for IDLE_RELEASE_SECONDS (`release_if_idle`, on progress of the cell in flight), and
    after MAX_HOLD_SECONDS open however fast writes come.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._connection: duckdb.DuckDBPyConnection | None = None
        self._opened_at = self._used_at = self._released_at = 0.0
        self._in_use = False

    @contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The open connection (opened when needed), for one transaction or query."""
        if self._in_use:
            raise RuntimeError(f"store {self.path}: a store call inside another would deadlock")
        self._in_use = True
        try:
            with damage_reported(self.path):
                yield self._open()
        except BaseException:
            self.release()  # rolls back a transaction left open; the next use reopens
            raise
        finally:
            self._in_use = False
            self._used_at = time.monotonic()
            if self._connection and self._used_at - self._opened_at > MAX_HOLD_SECONDS:
                self.release()

    def _open(self) -> duckdb.DuckDBPyConnection:
        if self._connection is None:
            time.sleep(max(0.0, self._released_at + READER_WINDOW_SECONDS - time.monotonic()))
            self._connection = connect(self.path, read_only=False)
            self._opened_at = time.monotonic()
        return self._connection

    @property
    def is_open(self) -> bool:
        return self._connection is not None

    def release(self) -> None:
        """Close the connection, so readers get in until the next write."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None
            self._released_at = time.monotonic()

    def release_if_idle(self) -> None:
        """Close the connection if no write used it for IDLE_RELEASE_SECONDS."""
        if time.monotonic() - self._used_at > IDLE_RELEASE_SECONDS:
            self.release()


@contextmanager
def writing(path: Path, description: str) -> Iterator[Writer]:
    """Hold the store's writer lock (a second runner is refused, naming `description`) and
    give the run its Writer; closed when the run ends, however it ends."""
    with lock.writer_lock(path, description):
        writer = Writer(path)
        try:
            yield writer
        finally:
            writer.release()


Source = Path | Writer  # what reads accept: a store's path, or the run's own Writer


def source_path(source: Source) -> Path:
    return source.path if isinstance(source, Writer) else source


@contextmanager
def reading(source: Source) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to read with: the run's Writer (which reads as well), or a short read-only
    connection to the path, closed after."""
    if isinstance(source, Writer):
        with source.connection() as connection:
            yield connection
        return
    with lock.reader_lock(source), damage_reported(source):
        connection = connect(source, read_only=True)
        try:
            yield connection
        finally:
            connection.close()


@contextmanager
def damage_reported(path: Path) -> Iterator[None]:
    """A store cut short opens, then fails to read a block: say so in one line."""
    try:
        yield
    except duckdb.IOException as error:
        first_line = str(error).splitlines()[0]
        raise StoreError(
            f"store {path}: cannot read it; is the file damaged? ({first_line})"
        ) from None


@contextmanager
def registered(
    connection: duckdb.DuckDBPyConnection, name: str, frame: pd.DataFrame
) -> Iterator[None]:
    """`frame` as the view `name` for a query; unregistered after, as the writer's connection
    outlives the call."""
    connection.register(name, frame)
    try:
        yield
    finally:
        connection.unregister(name)
