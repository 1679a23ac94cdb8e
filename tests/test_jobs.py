"""Job kinds: every setting names a registered kind, and a kind alone decides how many cells a
level makes and what runs them; planning, running and storing need no change for a new one."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from jdspec import store
from jdspec.jobs import JOB_KINDS, JobKind, LevelRun
from jdspec.plan import all_cells, expand
from jdspec.results import CellResult, MetricValue
from jdspec.run import run_spec
from jdspec.spec import load_spec
from jdspec.tasks import SETTINGS, Level

SpecWriter = Callable[..., Path]


def test_every_setting_runs_as_a_registered_job_kind() -> None:
    kinds = {name: entry.job_kind for name, entry in SETTINGS.items()}
    assert set(kinds.values()) <= set(JOB_KINDS.names())
    assert kinds["option_count"] == "evaluate" and kinds["data_adequacy"] == "finetune"


def _probe_runs(spec: object, level: Level, dense: bool) -> list[LevelRun]:
    """Two cells per level, questions drawn with seeds 7 and 8 (in the level, so in the key);
    compressed variants' curves say they are probes."""
    suffix = "" if dense else " (probe)"
    return [
        LevelRun(
            replace(level, config=level.config.model_copy(update={"seed": seed})), seed, suffix
        )
        for seed in (7, 8)
    ]


def _probe_execute(job: object, cells: tuple, on_progress: object) -> Iterator[CellResult]:
    """Each cell done at once, its accuracy its seed / 10: no model is loaded."""
    for cell in cells:
        metric = MetricValue("accuracy", cell.seed / 10, 1)
        yield CellResult(cell.cell_hash, "done", time.time(), 0.0, metrics=(metric,))


@pytest.fixture
def probe_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    """A job kind registered for the test only, run by the option_count setting."""
    monkeypatch.setitem(JOB_KINDS._entries, "probe", JobKind(_probe_runs, _probe_execute))
    setting = replace(SETTINGS.get("option_count"), job_kind="probe")
    monkeypatch.setitem(SETTINGS._entries, "option_count", setting)


def test_a_new_job_kind_plans_and_runs_through_the_registry(
    probe_kind: None, write_spec: SpecWriter, tmp_path: Path
) -> None:
    spec = load_spec(write_spec())
    jobs = expand(spec)
    assert {job.kind for job in jobs} == {"probe"}
    cells = all_cells(jobs)
    assert len(cells) == 4 * 2 * 2  # 4 variants x 2 levels x 2 seeds
    assert len({cell.cell_hash for cell in cells}) == len(cells)  # the seed is in the key
    families = {cell.family for cell in cells}
    assert families == {"dense", "magnitude (probe)", "magnitude N:4 (probe)"}
    path = tmp_path / "jd.duckdb"
    summary = run_spec(spec, path)
    assert (summary.done, summary.failed) == (16, 0)
    stored = store.read_frame(path, "SELECT seed, value FROM cells JOIN results USING (cell_hash)")
    assert sorted(set(map(tuple, stored.values.tolist()))) == [(7, 0.7), (8, 0.8)]


def test_a_job_kind_whose_runs_share_a_key_is_refused(
    monkeypatch: pytest.MonkeyPatch, write_spec: SpecWriter
) -> None:
    """Runs of one level that differ only outside the level config would be one cell twice."""

    def twice(spec: object, level: Level, dense: bool) -> list[LevelRun]:
        return [LevelRun(level, 7), LevelRun(level, 8)]

    monkeypatch.setitem(JOB_KINDS._entries, "twice", JobKind(twice, _probe_execute))
    setting = replace(SETTINGS.get("option_count"), job_kind="twice")
    monkeypatch.setitem(SETTINGS._entries, "option_count", setting)
    with pytest.raises(ValueError, match="job kind 'twice'.*share a cell key"):
        expand(load_spec(write_spec()))
