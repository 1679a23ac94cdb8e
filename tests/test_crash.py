"""Killing `jd run` at any moment loses at most the cell in flight and never corrupts the store.

A run of the tiny study (dense + 3 sparsities, x 2 levels = 8 cells) is SIGKILLed at 20 random
moments spread over one uninterrupted run's duration, each kill followed by `jd run --resume`,
itself killed in turn. After every kill the store holds whole cells only; when a resume runs to
the end before its kill comes, and after a final `--resume`, the store must hold exactly what
one uninterrupted run stored in another store: every cell done once, the same results and
examples. A finished round starts over with a fresh store, so every kill lands in a run.

Each `jd` is its own process, forked from tests/warm_jd.py with torch and transformers already
imported: a run then takes about 2 s instead of 12, and the kills land in its work.
"""

from __future__ import annotations

import json
import os
import random
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pytest
import yaml
from typer.testing import CliRunner

from jdspec.cli import app
from tests.conftest import tiny_spec

pytestmark = pytest.mark.integration

KILLS = 20
SEED = 6  # the number
# The columns a rerun reproduces exactly; run ids and timestamps differ by design.
TABLES = {
    "cells": "SELECT cell_hash, variant_hash, status FROM cells ORDER BY ALL",
    "results": "SELECT cell_hash, metric, value, n FROM results ORDER BY cell_hash, metric",
    "examples": (
        "SELECT cell_hash, example_id, prediction, gold, correct, score, option_scores "
        "FROM examples ORDER BY cell_hash, example_id"
    ),
    "variants": "SELECT variant_hash, method, sparsity FROM variants ORDER BY variant_hash",
    "variant_matrices": (
        "SELECT variant_hash, matrix, numel, zeros, sparsity FROM variant_matrices "
        "ORDER BY variant_hash, matrix"
    ),
}
# Primary keys, each of which must be unique in what the store holds.
KEYS = {
    "cells": "cell_hash",
    "results": "cell_hash, metric",
    "examples": "cell_hash, example_id",
    "variants": "variant_hash",
    "variant_matrices": "variant_hash, matrix",
}


class WarmJd:
    """`jd` processes forked from tests/warm_jd.py, which has done the imports already."""

    def __init__(self, environment: dict[str, str], logs: Path) -> None:
        self.logs, self.count = logs, 0
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).parent / "warm_jd.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=environment,
            bufsize=0,
        )
        self.pending = b""
        assert self._line(120) == "ready threads=1"

    def _line(self, timeout_seconds: float) -> str:
        deadline = time.monotonic() + timeout_seconds
        while b"\n" not in self.pending:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.process.stdout], [], [], max(left, 0))
            chunk = os.read(self.process.stdout.fileno(), 4096) if ready else b""
            if not chunk:
                raise AssertionError(f"tests/warm_jd.py: no answer in {timeout_seconds} s")
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return line.decode()

    def start(self, *argv: str) -> tuple[int, Path]:
        """Start `jd argv`; its pid and log file."""
        self.count += 1
        log = self.logs / f"attempt-{self.count}.log"
        self.process.stdin.write((json.dumps([*argv, str(log)]) + "\n").encode())
        started, pid = self._line(30).split()
        assert started == "started"
        return int(pid), log

    def wait(self, pid: int, timeout_seconds: float = 120) -> int:
        """The process's wait status once it is gone (until this call it cannot be reaped)."""
        self.process.stdin.write(b"reap\n")
        ended, ended_pid, status = self._line(timeout_seconds).split()
        assert (ended, int(ended_pid)) == ("ended", pid)
        return int(status)

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


def _rows(store: Path) -> dict[str, list[tuple]]:
    with duckdb.connect(str(store), read_only=True) as connection:
        return {table: connection.execute(sql).fetchall() for table, sql in TABLES.items()}


def _assert_keys_unique(store: Path) -> None:
    with duckdb.connect(str(store), read_only=True) as connection:
        for table, key in KEYS.items():
            total, distinct = connection.execute(
                f"SELECT count(*), count(DISTINCT ({key})) FROM {table}"
            ).fetchone()
            assert total == distinct, f"{table}: {total - distinct} duplicated rows"


def _assert_a_prefix_of(reference: dict[str, list[tuple]], store: Path) -> None:
    """A killed store holds, for each cell it calls done, exactly the reference's rows, and
    nothing of any other cell: a cell is written whole or not at all."""
    if not store.exists():
        return  # killed before its first write
    _assert_keys_unique(store)
    rows = _rows(store)
    done = {cell for cell, _, status in rows["cells"] if status == "done"}
    for table in ("results", "examples"):
        expected = [row for row in reference[table] if row[0] in done]
        assert rows[table] == expected, f"{table} after a kill differs from the reference"
    finished = {row[0] for row in rows["variants"]}
    assert rows["variants"] == [row for row in reference["variants"] if row[0] in finished]
    expected = [row for row in reference["variant_matrices"] if row[0] in finished]
    assert rows["variant_matrices"] == expected


def _exit_code(status: int, log: Path) -> int:
    assert os.WIFEXITED(status), f"jd died of signal {os.WTERMSIG(status)}:\n{log.read_text()}"
    return os.WEXITSTATUS(status)


@pytest.fixture
def warm_jd(tmp_path: Path) -> Iterator[Callable[[], WarmJd]]:
    environment = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "JD_CACHE": str(tmp_path / "cache"),
        # pyarrow's allocator would start a background thread, which makes fork unsafe.
        "JE_ARROW_MALLOC_CONF": "background_thread:false",
    }
    environment.pop("JD_STORE", None)
    (tmp_path / "logs").mkdir()
    launchers: list[WarmJd] = []

    def launch() -> WarmJd:
        launchers.append(WarmJd(environment, tmp_path / "logs"))
        return launchers[-1]

    yield launch
    for launcher in launchers:
        launcher.process.kill()
        launcher.process.wait()


def _uninterrupted_run(jd: WarmJd, spec: Path, store: Path) -> tuple[dict, float]:
    """The reference: rows of one run that nothing stopped, and how long it took."""
    started = time.monotonic()
    pid, log = jd.start("run", str(spec), "--store", str(store), "--json")
    assert _exit_code(jd.wait(pid), log) == 0, log.read_text()
    seconds = time.monotonic() - started
    _assert_keys_unique(store)
    rows = _rows(store)
    assert [status for _, _, status in rows["cells"]] == ["done"] * 8
    return rows, seconds


def _kill_repeatedly(
    jd: WarmJd, spec: Path, folder: Path, expected: dict, run_seconds: float
) -> tuple[Path, int]:
    """Kill runs and resumes at random moments until KILLS have died; the store of the last
    round, and how many kills found a store already written to."""
    random_delays = random.Random(SEED)
    kills, in_work, rounds, store, command = 0, 0, 0, None, ["run"]
    while kills < KILLS:
        if store is None:  # a new round: a fresh store, a plain run, then resumes
            rounds += 1
            store, command = folder / f"killed-{rounds}.duckdb", ["run"]
        pid, log = jd.start(*command, str(spec), "--store", str(store), "--json")
        time.sleep(random_delays.uniform(0, run_seconds))
        os.kill(pid, signal.SIGKILL)  # one that has ended is an unreaped zombie: no effect
        status = jd.wait(pid)
        if os.WIFSIGNALED(status):
            kills, in_work = kills + 1, in_work + store.exists()
            _assert_a_prefix_of(expected, store)
            command = ["run", "--resume"]
            continue
        assert _exit_code(status, log) == 0, log.read_text()
        _assert_keys_unique(store)
        assert _rows(store) == expected, f"round {rounds} ended with a store unlike the reference"
        store = None
    assert store is not None  # the loop ends on a kill
    return store, in_work


def test_killed_runs_resume_to_the_uninterrupted_result(
    tmp_path: Path, tiny_model_dir: Path, warm_jd: Callable[[], WarmJd]
) -> None:
    spec = tmp_path / "crash.yaml"
    study = tiny_spec(
        tiny_model_dir,
        name="crash",
        compressors=[{"method": "magnitude", "sweep": {"sparsity": [0.2, 0.4, 0.6]}}],
        evaluation={"n_examples": 4, "batch_size": 2},
    )
    spec.write_text(yaml.safe_dump(study, sort_keys=False))
    jd = warm_jd()
    expected, run_seconds = _uninterrupted_run(jd, spec, tmp_path / "reference.duckdb")
    store, in_work = _kill_repeatedly(jd, spec, tmp_path, expected, run_seconds)
    assert in_work >= KILLS // 4, "too few kills landed after the run's first write"

    pid, log = jd.start("run", "--resume", str(spec), "--store", str(store), "--json")
    assert _exit_code(jd.wait(pid), log) == 0, log.read_text()
    jd.close()
    _assert_keys_unique(store)
    assert _rows(store) == expected
    status = CliRunner().invoke(app, ["status", "--store", str(store), "--json"])
    assert status.exit_code == 0, status.output
    summary = json.loads(status.stdout)
    assert summary["writer"] is None
    assert summary["specs"] == [{"spec": "crash", "cells": 8, "done": 8, "failed": 0}]
    assert "running" not in {run["status"] for run in summary["runs"]}  # killed ones: "killed"
