"""The DuckDB store: one file, one writer at a time, any number of readers.

A run holds the writer lock for its whole length and owns one `Writer`, the only read-write
connection (jdspec/store/connection.py); workers never open the database. Readers open the file
read-only for a moment. Modules: schema.py (tables, version, migrations), lock.py (who is in
the file), connection.py (opening it), reads.py, writes.py.
"""

from __future__ import annotations

from jdspec.store.connection import Source, Writer, writing
from jdspec.store.lock import LockHolder, read_lock_holder, writer_lock
from jdspec.store.reads import cell_states, done_results, read_frame, user_query
from jdspec.store.schema import SCHEMA_VERSION, is_absent
from jdspec.store.writes import (
    begin_run,
    finish_run,
    write_cell,
    write_members,
    write_variant,
)

__all__ = [
    "SCHEMA_VERSION",
    "LockHolder",
    "Source",
    "Writer",
    "begin_run",
    "cell_states",
    "done_results",
    "finish_run",
    "is_absent",
    "read_frame",
    "read_lock_holder",
    "user_query",
    "write_cell",
    "write_members",
    "write_variant",
    "writer_lock",
    "writing",
]
