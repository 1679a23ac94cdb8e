"""The Ray backend: same stored numbers as the local backend, dead workers, lazy import."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from jdspec import store
from jdspec.backends import ray as ray_backend
from jdspec.errors import UserError
from jdspec.plan import expand
from jdspec.results import CellResult, JobsRunning
from jdspec.run import Backend, plan_spec, run_spec
from jdspec.spec import load_spec

SpecWriter = Callable[..., Path]
CPU_EVALUATION = {"n_examples": 12, "batch_size": 4, "device": "cpu"}
COMPARED = {
    "examples": "SELECT cell_hash, example_id, prompt_hash, prediction, gold, correct, score, "
    "option_scores FROM examples ORDER BY cell_hash, example_id",
    "results": "SELECT cell_hash, metric, value, n FROM results ORDER BY cell_hash, metric",
    "variant_matrices": "SELECT variant_hash, matrix, numel, zeros FROM variant_matrices "
    "ORDER BY variant_hash, matrix",
}


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """One Ray for all tests: starting one takes seconds. run_jobs reuses it, never stops it."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_planning_and_the_local_backend_do_not_import_ray() -> None:
    code = (
        "import sys, jdspec.run, jdspec.cli, jdspec.backends.local; assert 'ray' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_ray_is_a_one_line_spec_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(UserError, match=r"pip install 'jd\[ray\]'"):
        ray_backend.run_jobs([], lambda event: None, None, 0.0)


def test_ray_client_addresses_are_refused_before_connecting() -> None:
    not_started = SimpleNamespace(is_initialized=lambda: False)
    with pytest.raises(UserError, match="--address auto"):
        ray_backend._connect(not_started, "ray://head:10001")  # type: ignore[arg-type]


@pytest.mark.integration
def test_ray_stores_what_the_local_backend_stores(
    ray_session: None, write_spec: SpecWriter, tmp_path: Path
) -> None:
    spec = load_spec(write_spec(evaluation=CPU_EVALUATION))
    local, on_ray = tmp_path / "local.duckdb", tmp_path / "ray.duckdb"
    # Ray gives a 1-CPU task OMP_NUM_THREADS=1; the local run must use one thread too, or the
    # matrix products may sum in another order and the floats differ in their last bits.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert run_spec(spec, local).done == 8
    finally:
        torch.set_num_threads(threads)
    events: list[object] = []
    summary = run_spec(spec, on_ray, on_event=events.append, backend=Backend("ray"))
    assert (summary.done, summary.failed, summary.status) == (8, 0, "finished")
    for query in COMPARED.values():
        # Same code, same CPU, one thread each: the floats are identical, not merely close.
        pd.testing.assert_frame_equal(
            store.read_frame(local, query), store.read_frame(on_ray, query)
        )
    assert len(store.read_frame(on_ray, COMPARED["examples"])) == 8 * 12
    running = [event.per_node for event in events if isinstance(event, JobsRunning)]
    assert running[-1] == {}  # every job ended
    assert max(sum(nodes.values()) for nodes in running) >= 2  # 2 CPUs: 2 jobs at once
    assert len({node for nodes in running for node in nodes}) == 1  # this machine


@pytest.mark.integration
def test_a_dead_worker_fails_its_unreturned_cells_and_resume_runs_them(
    ray_session: None, write_spec: SpecWriter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = load_spec(write_spec(evaluation=CPU_EVALUATION))
    path = tmp_path / "jd.duckdb"
    first, doomed = expand(spec)[1].cells  # the first is sent, then the worker dies
    job_records = ray_backend.job_records

    def dying(job: object, cells: object) -> Iterator[object]:
        """Shipped to the worker as the task body (a closure travels by value): it exits the
        worker process, as the OOM killer or a segfault would, when the doomed cell is ready."""
        for record in job_records(job, cells):  # type: ignore[arg-type]
            if isinstance(record, CellResult) and record.cell_hash == doomed.cell_hash:
                os._exit(1)
            yield record

    with monkeypatch.context() as patched:
        patched.setattr(ray_backend, "job_records", dying)
        summary = run_spec(spec, path, backend=Backend("ray"))
    # The first cell's record was sent before the worker died, but Ray may learn of the death
    # before the record lands: then that cell is failed too. Never stored twice, never lost.
    failed = store.read_frame(path, "SELECT cell_hash, error FROM cells WHERE status = 'failed'")
    assert doomed.cell_hash in set(failed.cell_hash)
    assert set(failed.cell_hash) <= {first.cell_hash, doomed.cell_hash}
    assert (summary.done + summary.failed, summary.status) == (8, "finished")
    assert all("worker died" in error for error in failed.error)
    resumed = run_spec(spec, path, retry_failed=True, backend=Backend("ray"))
    assert (resumed.done, resumed.failed, resumed.already_done) == (len(failed), 0, summary.done)
    assert {job.statuses for job in plan_spec(spec, path)} == {("done", "done")}
