"""Who is in a store, told by lock files beside it rather than by DuckDB's error text.

`<store>.lock`: the one writer (a `jd run`) holds it exclusively for the whole run and writes its
pid and description into it, so a second runner is refused at once, naming the first, and
readers know that a failure to open the database means a run holds it for a moment.
`<store>.readers`: readers hold it shared while their connection is open, so the writer knows
that a failure to open means readers are in. flock is released by the kernel when a process dies,
so a killed run or reader leaves no stale lock, only a file.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from jdspec.errors import StoreBusy


@dataclass(frozen=True)
class LockHolder:
    pid: int
    description: str


def _writer_file(path: Path) -> Path:
    return Path(f"{path}.lock")


def _readers_file(path: Path) -> Path:
    return Path(f"{path}.readers")


@contextmanager
def writer_lock(path: Path, description: str) -> Iterator[None]:
    """Hold `<store>.lock` for a whole run; a second runner is refused at once, naming us."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(_writer_file(path), "a+")  # noqa: SIM115  (held for the whole run)
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
    lock_path = _writer_file(path)
    if not lock_path.exists():
        return None
    with open(lock_path) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                info = json.loads(lock_path.read_text() or "{}")
            except json.JSONDecodeError:
                info = {}
            pid = int(info.get("pid", 0))
            return LockHolder(pid, f"jd run (pid {pid}: {info.get('description', '?')})")
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


@contextmanager
def reader_lock(path: Path) -> Iterator[None]:
    """Hold `<store>.readers` shared while a read-only connection is open. Where the file cannot
    be made (a read-only folder) no run can write the store either, so the reader goes without."""
    try:
        handle = open(_readers_file(path), "a")  # noqa: SIM115  (held while reading)
    except OSError:
        yield
        return
    try:
        fcntl.flock(handle, fcntl.LOCK_SH)  # waits only for an instant: see readers_active
        yield
    finally:
        handle.close()


def readers_active(path: Path) -> bool:
    """Whether some process reads the store now (holds `<store>.readers`)."""
    try:
        handle = open(_readers_file(path), "a")  # noqa: SIM115  (closed below)
    except OSError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False
