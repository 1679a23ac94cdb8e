"""The run's Writer and readers in other processes: the writer reads through its own connection,
lets readers in when it releases, and an open that fails is waited out only when the lock files
say another jd process is in the file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from jdspec import store
from jdspec.errors import StoreError
from jdspec.store import connection as store_connection
from tests.store.helpers import ROW, done

COUNT_CELLS = """
import pathlib, sys
from jdspec import store
from jdspec.store import connection
pause = connection.pause_while_busy
said = []

def saying_busy(path):
    if not said:
        print("busy", flush=True)
        said.append(1)
    pause(path)

connection.pause_while_busy = saying_busy
print(store.read_frame(pathlib.Path(sys.argv[1]), "SELECT count(*) AS n FROM cells").n.item())
"""


def _count_in_another_process(path: Path) -> subprocess.Popen:
    """A reader in another process; it prints 'busy' the first time it finds the store taken."""
    return subprocess.Popen(
        [sys.executable, "-c", COUNT_CELLS, str(path)], stdout=subprocess.PIPE, text=True
    )


def _holding_in_another_process(code: str, path: Path, said: str) -> subprocess.Popen:
    """Python `code` in another process (sys.argv[1] is `path`): it prints `said` once it holds
    the store, then holds it until a line arrives on its stdin."""
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().strip() == said
    return process


def _store_with_one_cell(path: Path) -> None:
    with store.writing(path, "a test") as writer:
        store.write_cell(writer, ROW, done())


def test_the_writer_reads_through_its_own_connection(tmp_path: Path) -> None:
    path = tmp_path / "jd.duckdb"
    with store.writing(path, "a test") as writer:
        store.write_cell(writer, ROW, done())
        assert writer.is_open
        assert store.cell_states(writer, ["c1"]).status.tolist() == ["done"]
        with writer.connection(), pytest.raises(RuntimeError, match="inside another"):
            store.read_frame(writer, "SELECT 1")
    assert not writer.is_open


def test_a_reader_waits_while_the_run_holds_the_file_then_reads(tmp_path: Path) -> None:
    path = tmp_path / "jd.duckdb"
    with store.writing(path, "a test") as writer:
        store.write_cell(writer, ROW, done())
        reader = _count_in_another_process(path)
        assert reader.stdout.readline().strip() == "busy"  # the writer's connection is open
        writer.release()  # as the run does before waiting for its backend
        assert reader.stdout.readline().strip() == "1"
        assert reader.wait(timeout=60) == 0
        store.write_cell(writer, {**ROW, "cell_hash": "c2"}, done("c2"))  # reopens after it
    assert store.read_frame(path, "SELECT count(*) AS n FROM cells").n.item() == 2


def test_the_writer_waits_for_a_reader_then_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "jd.duckdb"
    _store_with_one_cell(path)
    reading = _holding_in_another_process(
        "import pathlib, sys\nfrom jdspec.store.connection import reading\n"
        "with reading(pathlib.Path(sys.argv[1])):\n"
        "    print('reading', flush=True); sys.stdin.readline()",
        path,
        "reading",
    )
    pauses = []

    def let_the_reader_finish(path: Path) -> None:
        pauses.append(path)
        if len(pauses) == 1:
            reading.stdin.write("done\n")
            reading.stdin.flush()
            reading.wait(timeout=60)

    monkeypatch.setattr(store_connection, "pause_while_busy", let_the_reader_finish)
    with store.writing(path, "a test") as writer:
        store.write_cell(writer, {**ROW, "cell_hash": "c2"}, done("c2"))
    assert len(pauses) == 1
    assert store.read_frame(path, "SELECT count(*) AS n FROM cells").n.item() == 2


def test_a_file_held_by_no_jd_process_fails_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another program holding the file is not a run: no lock file says so, so no waiting."""
    path = tmp_path / "jd.duckdb"
    _store_with_one_cell(path)
    holder = _holding_in_another_process(
        "import duckdb, sys\nconnection = duckdb.connect(sys.argv[1])\n"
        "print('open', flush=True); sys.stdin.readline()",
        path,
        "open",
    )
    try:
        pauses: list[Path] = []
        monkeypatch.setattr(store_connection, "pause_while_busy", pauses.append)
        with pytest.raises(StoreError, match="cannot open it"):
            store.read_frame(path, "SELECT 1")
        assert len(pauses) == 1  # once more at once, in case a reader had just left; no more
    finally:
        holder.kill()
        holder.wait()


def test_a_writer_held_open_long_closes_after_its_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """However fast writes come, the connection closes after MAX_HOLD_SECONDS open."""
    path = tmp_path / "jd.duckdb"
    monkeypatch.setattr(store_connection, "MAX_HOLD_SECONDS", 0.0)
    with store.writing(path, "a test") as writer:
        store.write_cell(writer, ROW, done())
        assert not writer.is_open
        with duckdb.connect(str(path), read_only=True) as other:  # nothing holds the file
            assert other.execute("SELECT count(*) FROM cells").fetchall() == [(1,)]
