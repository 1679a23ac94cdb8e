"""The `jd` command as a user runs it: exit codes, JSON output, nothing written on bad input."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner

from jdspec.cli import app

runner = CliRunner()
SpecWriter = Callable[..., Path]


def _jd(*args: str) -> tuple[int, str]:
    """Exit code and stdout, or stdout and stderr together when the command failed."""
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout if result.exit_code == 0 else result.output


def test_plan_run_status_report_round(write_spec: SpecWriter, tmp_path: Path) -> None:
    spec, store = str(write_spec()), str(tmp_path / "jd.duckdb")
    code, output = _jd("plan", spec, "--store", store, "--json")
    assert code == 0 and json.loads(output)["counts"] == {"new": 8, "done": 0, "failed": 0}
    assert not Path(store).exists()  # planning writes nothing
    code, output = _jd("run", spec, "--store", store, "--json", "--limit", "2")
    assert code == 0 and json.loads(output)["done"] == 2
    code, output = _jd("plan", spec, "--store", store, "--explain", "--json")
    reasons = {row["status"] for row in json.loads(output)}
    assert code == 0 and reasons == {"new", "done"}
    code, output = _jd("status", "--store", store, "--json")
    status = json.loads(output)
    assert code == 0 and status["specs"] == [{"spec": "tiny", "cells": 8, "done": 2, "failed": 0}]
    assert status["runs"][0]["status"] == "finished" and status["runs"][0]["done"] == 2
    assert status["writer"] is None
    code, output = _jd(
        "report", "--sql", "SELECT count(*) AS n FROM jd_results", "--store", store, "--json"
    )
    assert code == 0 and json.loads(output) == [{"n": 4}]


def test_bad_spec_exits_2_and_writes_nothing(write_spec: SpecWriter, tmp_path: Path) -> None:
    spec = write_spec(evaluation={"n_examples": -3})
    store = tmp_path / "jd.duckdb"
    for command in ("plan", "run"):
        code, output = _jd(command, str(spec), "--store", str(store))
        assert code == 2, output
        assert "evaluation.n_examples" in output and "line" in output
        assert "Traceback" not in output
    assert not store.exists() and not Path(f"{store}.lock").exists()


def test_delete_is_refused_and_changes_nothing(write_spec: SpecWriter, tmp_path: Path) -> None:
    spec, store = str(write_spec()), tmp_path / "jd.duckdb"
    assert _jd("run", spec, "--store", str(store), "--limit", "1", "--json")[0] == 0
    before = store.read_bytes()
    code, output = _jd("report", "--sql", "DELETE FROM results", "--store", str(store))
    assert code == 2 and "read-only" in output
    assert store.read_bytes() == before


def test_report_needs_results(write_spec: SpecWriter, tmp_path: Path) -> None:
    code, output = _jd("report", str(write_spec()), "--store", str(tmp_path / "none.duckdb"))
    assert code == 2 and "holds no done cell" in output


def test_the_cells_bar_says_how_many_jobs_each_ray_node_runs() -> None:
    from rich.console import Console

    from jdspec.progress import RunProgress
    from jdspec.results import JobsRunning
    from jdspec.run import RunStarted

    with RunProgress(Console(), enabled=False) as progress:
        progress.update(RunStarted("run", cell_count=8, job_count=4))
        progress.update(JobsRunning({"10.0.0.1": 2, "10.0.0.2": 1}))
        [cells, examples] = progress.progress.tasks
        assert cells.description == "cells (node 10.0.0.1: 2 jobs, node 10.0.0.2: 1 job)"
        assert not examples.visible  # per-example progress stays in the Ray workers
        progress.update(JobsRunning({}))
        assert cells.description == "cells"


def test_run_exits_1_when_a_cell_fails_and_says_how_to_see_why(
    write_spec: SpecWriter, tmp_path: Path
) -> None:
    """2:5 does not divide the tiny model's 64 input features: the magnitude job fails its two
    cells at compression, the dense cells are done."""
    spec = str(write_spec(compressors=[{"method": "magnitude", "mask_structure": "2:5"}]))
    store = str(tmp_path / "jd.duckdb")
    result = runner.invoke(app, ["run", spec, "--store", store, "--json"])
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout)
    assert (summary["done"], summary["failed"], summary["status"]) == (2, 2, "finished")
    assert f"2 cells failed: see why with `jd plan {spec} --explain`" in result.stderr
    explained = json.loads(_jd("plan", spec, "--store", store, "--explain", "--json")[1])
    assert sum("not a multiple of M=5" in row["reason"] for row in explained) == 2
    code, output = _jd("run", spec, "--store", store)  # nothing new failed: nothing to do
    assert code == 0 and output.startswith("nothing to do"), output
