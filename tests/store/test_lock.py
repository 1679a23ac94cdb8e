"""The writer lock through `jd`: a second runner is refused at once naming the first; the lock
of a killed run, whose file stays behind naming a dead pid, never blocks the next run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jdspec.cli import app
from jdspec.errors import StoreBusy

runner = CliRunner()
SpecWriter = Callable[..., Path]
HOLDER = """\
import pathlib, sys
from jdspec import store
with store.writer_lock(pathlib.Path(sys.argv[1]), "jd run tiny, started by a test"):
    print("held", flush=True)
    sys.stdin.read()  # holds the lock until killed, however slow the test around it is
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen]:
    """Another process holding the writer lock of tmp_path/jd.duckdb until it is killed."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "jd.duckdb")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().strip() == "held"
    yield process
    process.kill()
    process.wait()


def _lock_pid(store: Path) -> int:
    return json.loads(Path(f"{store}.lock").read_text())["pid"]


def test_a_second_run_is_refused_at_once_naming_the_holder(
    write_spec: SpecWriter, tmp_path: Path, holder: subprocess.Popen
) -> None:
    store = tmp_path / "jd.duckdb"
    result = runner.invoke(app, ["run", str(write_spec()), "--store", str(store)])
    assert result.exit_code == 2, result.output
    assert f"pid {holder.pid}: jd run tiny, started by a test" in result.output
    assert "Traceback" not in result.output
    assert holder.poll() is None  # refused while the holder still runs: it did not wait for it
    assert not store.exists()
    status = runner.invoke(app, ["status", "--store", str(store), "--json"])
    assert f"pid {holder.pid}" in json.loads(status.stdout)["writer"]


def test_the_lock_of_a_killed_run_is_cleared_by_the_next(
    write_spec: SpecWriter, tmp_path: Path, holder: subprocess.Popen
) -> None:
    store = tmp_path / "jd.duckdb"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert _lock_pid(store) == holder.pid  # the file stays, naming a dead process
    status = runner.invoke(app, ["status", "--store", str(store), "--json"])
    assert status.exit_code == 0 and json.loads(status.stdout)["writer"] is None

    result = runner.invoke(app, ["run", str(write_spec()), "--store", str(store), "--limit", "1"])
    assert result.exit_code == 0, result.output
    assert _lock_pid(store) == os.getpid()
    plan = runner.invoke(app, ["plan", str(write_spec()), "--store", str(store), "--json"])
    assert json.loads(plan.stdout)["counts"]["done"] == 1


@pytest.mark.parametrize(
    "content",
    ['{"pid": 1, "description": "jd run other"}', "not json", ""],
    ids=["a live pid", "garbage", "empty"],
)
def test_a_lock_file_nobody_holds_never_blocks(
    write_spec: SpecWriter, tmp_path: Path, content: str
) -> None:
    """Only the kernel's lock on the file counts, not what the file says."""
    store = tmp_path / "jd.duckdb"
    Path(f"{store}.lock").write_text(content)
    result = runner.invoke(app, ["run", str(write_spec()), "--store", str(store), "--limit", "1"])
    assert result.exit_code == 0, result.output
    assert _lock_pid(store) == os.getpid()


def test_second_writer_is_refused_naming_the_holder(
    tmp_path: Path, holder: subprocess.Popen
) -> None:
    from jdspec import store as jd_store

    path = tmp_path / "jd.duckdb"
    busy = pytest.raises(StoreBusy, match=rf"pid {holder.pid}: jd run tiny, started by a test")
    with busy, jd_store.writer_lock(path, "second"):
        pass
    assert jd_store.read_lock_holder(path).pid == holder.pid
    holder.kill()
    holder.wait()
    assert jd_store.read_lock_holder(path) is None  # the kernel freed the dead holder's lock
    with jd_store.writer_lock(path, "after"):
        pass
