"""End to end on a tiny local model: run, idempotence, --force, failures, resume, kill -9,
report."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from jdspec import store
from jdspec.compress import apply_compressor
from jdspec.eval import job as worker
from jdspec.models import load_model
from jdspec.plan import attach_statuses, expand
from jdspec.report import write_report
from jdspec.run import _pending_work, explain_cells, plan_spec, report_rows, run_spec
from jdspec.spec import load_spec

SpecWriter = Callable[..., Path]


def _examples(path: Path) -> pd.DataFrame:
    return store.read_frame(
        path,
        "SELECT cell_hash, example_id, prompt_hash, prediction, gold, "
        "correct, score FROM examples ORDER BY cell_hash, example_id",
    )


def test_run_stores_every_cell_once_and_second_run_does_nothing(
    write_spec: SpecWriter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = load_spec(write_spec())
    path = tmp_path / "jd.duckdb"
    summary = run_spec(spec, path)
    assert (summary.done, summary.failed, summary.status) == (8, 0, "finished")
    results = store.user_query(path, "SELECT * FROM jd_results ORDER BY family, strength, level")
    assert len(results) == 8 * 2  # accuracy and accuracy_norm per cell
    assert set(results.family) == {"dense", "magnitude", "magnitude N:4"}
    assert (results.n == 12).all() and results.value.between(0, 1).all()
    assert len(_examples(path)) == 8 * 12

    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("a second run must not load a model")

    monkeypatch.setattr(worker, "load_model", no_model)
    again = run_spec(spec, path)
    assert (again.done, again.already_done, again.status) == (0, 8, "nothing to do")


def test_force_reruns_done_cells_keeping_their_old_results(
    write_spec: SpecWriter, tmp_path: Path
) -> None:
    spec = load_spec(write_spec(compressors=[{"method": "magnitude", "sparsity": 0.5}]))
    path = tmp_path / "jd.duckdb"
    first = run_spec(spec, path)
    assert (first.done, first.status) == (4, "finished")
    stored = store.read_frame(path, "SELECT cell_hash, metric, value FROM results ORDER BY ALL")
    again = run_spec(spec, path)
    assert (again.done, again.already_done, again.status) == (0, 4, "nothing to do")
    assert set(store.read_frame(path, "SELECT run_id FROM cells").run_id) == {first.run_id}
    assert store.read_frame(path, "SELECT count(*) AS n FROM cells_history").n.item() == 0
    forced = run_spec(spec, path, force=True, limit=3)
    assert (forced.done, forced.already_done, forced.left) == (3, 4, 0)
    history = store.read_frame(path, "SELECT run_id, superseded_by_run FROM cells_history")
    assert history.values.tolist() == [[first.run_id, forced.run_id]] * 3
    runs = store.read_frame(path, "SELECT run_id, count(*) AS n FROM cells GROUP BY 1 ORDER BY n")
    assert runs.values.tolist() == [[first.run_id, 1], [forced.run_id, 3]]
    old = store.read_frame(
        path, "SELECT cell_hash, metric, value FROM results_history ORDER BY ALL"
    )
    rerun = stored[stored.cell_hash.isin(old.cell_hash)].reset_index(drop=True)
    pd.testing.assert_frame_equal(old, rerun)  # the earlier values, as they were stored
    live = store.read_frame(path, "SELECT cell_hash, metric, value FROM results ORDER BY ALL")
    pd.testing.assert_frame_equal(live, stored)  # a deterministic rerun measures the same
    assert len(store.user_query(path, "SELECT * FROM jd_results")) == 4 * 2


def test_force_adds_done_cells_to_the_work_within_the_limit(write_spec: SpecWriter) -> None:
    jobs = expand(load_spec(write_spec()))
    cells = [cell.cell_hash for job in jobs for cell in job.cells]
    planned = attach_statuses(jobs, {cells[0]: "done", cells[1]: "failed", cells[2]: "done"})

    def chosen(retry_failed: bool, limit: int | None, force: bool) -> list[int]:
        work = _pending_work(planned, retry_failed, limit, force)
        return [cells.index(cell.cell_hash) for _, job_cells in work for cell in job_cells]

    assert chosen(False, None, False) == [3, 4, 5, 6, 7]
    assert chosen(False, None, True) == [0, 2, 3, 4, 5, 6, 7]
    assert chosen(True, None, True) == list(range(8))
    assert chosen(False, 3, True) == [0, 2, 3]


def test_stored_sparsity_equals_the_weights(write_spec: SpecWriter, tmp_path: Path) -> None:
    spec = load_spec(write_spec())
    path = tmp_path / "jd.duckdb"
    run_spec(spec, path, limit=4)  # dense and sparsity 0.3
    for job in expand(spec)[:2]:
        model, _ = load_model(job.model_ref, "float32", "cpu")
        record = apply_compressor(model, job.compressor)
        weights = dict(model.named_parameters())
        stored = store.read_frame(
            path,
            "SELECT matrix, numel, zeros FROM variant_matrices WHERE variant_hash = ?",
            [job.variant_hash],
        )
        assert len(stored) == len(record.matrices) == 14
        for row in stored.itertuples():
            weight = weights[f"{row.matrix}.weight"]
            assert (row.numel, row.zeros) == (weight.numel(), int((weight == 0).sum()))
        overall = store.read_frame(
            path, "SELECT sparsity FROM variants WHERE variant_hash = ?", [job.variant_hash]
        ).sparsity.item()
        assert overall == pytest.approx(stored.zeros.sum() / stored.numel.sum())
        assert overall == pytest.approx(job.compressor.strength(), abs=1e-3)


def test_failed_cell_is_kept_and_resume_retries_it(
    write_spec: SpecWriter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = load_spec(write_spec())
    path = tmp_path / "jd.duckdb"
    real_answer = worker.answer_requests
    calls = {"n": 0}

    def flaky(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("simulated failure in scoring")
        return real_answer(*args, **kwargs)

    monkeypatch.setattr(worker, "answer_requests", flaky)
    summary = run_spec(spec, path)
    assert (summary.done, summary.failed) == (7, 1)
    explained = [row for row in explain_cells(spec, path) if row["status"] == "failed"]
    assert len(explained) == 1 and "simulated failure" in explained[0]["reason"]
    assert run_spec(spec, path).status == "nothing to do"  # failed cells wait for --resume
    resumed = run_spec(spec, path, retry_failed=True)
    assert (resumed.done, resumed.failed, resumed.already_done) == (1, 0, 7)
    assert {job.statuses for job in plan_spec(spec, path)} == {("done", "done")}


def test_compression_failure_fails_the_job_cells(write_spec: SpecWriter, tmp_path: Path) -> None:
    spec = load_spec(write_spec(compressors=[{"method": "magnitude", "mask_structure": "2:5"}]))
    summary = run_spec(spec, tmp_path / "jd.duckdb")
    assert (summary.done, summary.failed) == (2, 2)
    errors = store.read_frame(
        tmp_path / "jd.duckdb", "SELECT error FROM cells WHERE status = 'failed'"
    ).error
    assert len(errors) == 2 and all("not a multiple of M=5" in error for error in errors)


def test_limit_runs_the_first_cells(write_spec: SpecWriter, tmp_path: Path) -> None:
    summary = run_spec(load_spec(write_spec()), tmp_path / "jd.duckdb", limit=3)
    assert (summary.done, summary.left) == (3, 5)


def test_report_from_the_store(write_spec: SpecWriter, tmp_path: Path) -> None:
    spec = load_spec(write_spec())
    path = tmp_path / "jd.duckdb"
    run_spec(spec, path)
    rows = report_rows(spec, path)
    assert set(rows.metric) == {"accuracy", "accuracy_norm"} and set(rows.spec) == {"tiny"}
    report = write_report(spec.name, rows, tmp_path / "report")
    assert {p.name for p in report.paths} >= {"drops.csv", "trends.csv", "drop.png", "drop.html"}
    assert len(report.trends) == 2 * 2 * 2  # 2 families x 2 levels x 2 metrics


@pytest.mark.integration  # jd in subprocesses, 1,200 examples
def test_kill_minus_nine_then_resume_equals_an_uninterrupted_run(
    write_spec: SpecWriter, tmp_path: Path
) -> None:
    spec_path = write_spec(evaluation={"n_examples": 150, "batch_size": 4})
    killed, clean = tmp_path / "killed.duckdb", tmp_path / "clean.duckdb"
    command = [sys.executable, "-m", "jdspec.cli", "run", str(spec_path), "--json"]
    process = _paused_run(3, tmp_path, ["run", str(spec_path), "--store", str(killed)])
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert len(store.cell_states(killed, _hashes(spec_path))) == 3
    assert store.read_frame(killed, "SELECT status FROM runs").status.tolist() == ["running"]
    subprocess.run(
        [*command, "--resume", "--store", str(killed)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    subprocess.run(
        [*command, "--store", str(clean)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pd.testing.assert_frame_equal(_examples(killed), _examples(clean))
    assert len(_examples(killed)) == 8 * 150


def _paused_run(cells: int, tmp_path: Path, argv: list[str]) -> subprocess.Popen:
    """`jd ARGV` in a subprocess, returned once it has stored `cells` cells and waits for a
    signal (tests/pausing_jd.py): the interruption point does not depend on the machine's speed.
    The deadline only turns a hang into a failure."""
    marker = tmp_path / "paused"
    launcher = Path(__file__).parent / "pausing_jd.py"
    process = subprocess.Popen(
        [sys.executable, str(launcher), str(cells), str(marker), *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 600
    while not marker.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            _, stderr = process.communicate()
            pytest.fail(f"jd ended or hung before storing {cells} cells: {stderr}")
        time.sleep(0.05)
    return process


def _hashes(spec_path: Path) -> list[str]:
    return [cell.cell_hash for job in expand(load_spec(spec_path)) for cell in job.cells]


@pytest.mark.integration
def test_real_model_beats_chance_and_pruning_hurts(tmp_path: Path) -> None:
    demo = Path(__file__).parent.parent / "specs" / "demo.yaml"
    text = demo.read_text().replace("n_examples: 150", "n_examples: 40")
    text = text.replace("sparsity: [0.1, 0.2, 0.3, 0.4, 0.5]", "sparsity: [0.5]")
    text = text.replace("    - option_count: 2\n    - option_count: 3\n", "")
    spec_path = tmp_path / "demo-small.yaml"
    spec_path.write_text(text)
    path = tmp_path / "jd.duckdb"
    assert run_spec(load_spec(spec_path), path).done == 2
    gold = store.read_frame(
        path,
        "SELECT c.family, avg(e.correct::INT) AS accuracy, "
        "avg(list_extract(e.option_scores, strpos('ABCD', e.gold))) AS gold_score "
        "FROM examples e JOIN cells c USING (cell_hash) GROUP BY c.family",
    ).set_index("family")
    assert gold.loc["dense", "accuracy"] >= 0.4  # 4 options: chance is 0.25
    assert gold.loc["magnitude", "gold_score"] < gold.loc["dense", "gold_score"]


@pytest.mark.integration  # jd in subprocesses
def test_ctrl_c_ends_cleanly_and_resume_finishes(write_spec: SpecWriter, tmp_path: Path) -> None:
    spec_path = write_spec(evaluation={"n_examples": 150, "batch_size": 4})
    path = tmp_path / "jd.duckdb"
    process = _paused_run(2, tmp_path, ["run", str(spec_path), "--store", str(path)])
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "--resume" in stderr and "Traceback" not in stderr
    runs = store.read_frame(path, "SELECT status, cells_done FROM runs")
    assert runs.status.tolist() == ["interrupted"] and runs.cells_done.item() == 2
    assert len(store.cell_states(path, _hashes(spec_path))) == 2
    assert store.read_lock_holder(path) is None
    command = [sys.executable, "-m", "jdspec.cli", "run", str(spec_path), "--store", str(path)]
    finished = subprocess.run([*command, "--resume", "--json"], capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    assert len(store.cell_states(path, _hashes(spec_path))) == 8
