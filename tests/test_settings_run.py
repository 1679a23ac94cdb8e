"""Settings 3, 5 and 6 end to end on the tiny model and the shipped data: run, store, report."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from jdspec import store
from jdspec.run import report_rows, run_spec
from jdspec.spec import load_spec

SpecWriter = Callable[..., Path]
ONE_SPARSITY = [{"method": "magnitude", "scope": "layer", "sparsity": 0.5}]

pytestmark = pytest.mark.integration


def _run(write_spec: SpecWriter, tmp_path: Path, spectrum: dict, **evaluation: object):
    spec = load_spec(
        write_spec(
            compressors=ONE_SPARSITY,
            spectrum=spectrum,
            evaluation={"n_examples": 6, "batch_size": 4, **evaluation},
        )
    )
    path = tmp_path / "jd.duckdb"
    summary = run_spec(spec, path)
    assert (summary.failed, summary.status) == (0, "finished")
    return spec, path, summary


def test_context_length_generates_and_scores_every_level(
    write_spec: SpecWriter, tmp_path: Path
) -> None:
    spectrum = {
        "setting": "context_length",
        "dataset": {"name": "squad"},
        "generating": {"max_new_tokens": 4},
        "levels": [{"closed_book": True}, {"context_percent": 100}, {"context_percent": 20}],
    }
    spec, path, summary = _run(write_spec, tmp_path, spectrum)
    assert summary.done == 2 * 3
    rows = report_rows(spec, path)
    assert set(rows.metric) == {"exact_match", "f1", "contains_answer"}
    assert rows.value.between(0, 1).all() and (rows.n == 6).all()
    examples = store.read_frame(path, "SELECT example_id, prediction, gold FROM examples")
    assert len(examples) == 2 * 3 * 6 and examples.gold.str.startswith("[").all()
    # The same six questions at every level.
    assert examples.groupby("example_id").size().eq(2 * 3).all()


def test_human_gap_difficulty_comes_from_the_dense_run(
    write_spec: SpecWriter, tmp_path: Path
) -> None:
    spectrum = {
        "setting": "human_gap",
        "levels": [
            {"task": "piqa", "human": 0.95, "human_source": "Bisk et al. 2020"},
            {"task": "winogrande", "human": 0.94, "human_source": "Sakaguchi et al. 2020"},
        ],
    }
    spec, path, summary = _run(write_spec, tmp_path, spectrum, batch_size="auto")
    assert summary.done == 2 * 2
    rows = report_rows(spec, path)
    dense = rows[rows.family == "dense"].set_index(["level", "metric"])["value"]
    for row in rows.itertuples():
        human = 0.95 if row.level == "piqa" else 0.94
        assert row.difficulty == pytest.approx((human - dense[(row.level, row.metric)]) / human)
    assert set(rows[rows.level == "winogrande"].metric) == {"accuracy"}
    sizes = store.read_frame(path, "SELECT DISTINCT batch_size FROM cells")
    assert sizes.batch_size.tolist() == [64]


def test_factoid_and_multiple_choice_levels_report_accuracy(
    write_spec: SpecWriter, tmp_path: Path
) -> None:
    spectrum = {
        "setting": "factoid_vs_mcq",
        "factoid": {
            "dataset": {"name": "nq_open"},
            "shots": 2,
            "generating": {"max_new_tokens": 3},
        },
        "multiple_choice": {"dataset": {"name": "arc_easy"}, "answer_format": "cloze"},
    }
    spec, path, summary = _run(write_spec, tmp_path, spectrum)
    assert summary.done == 2 * 2
    rows = report_rows(spec, path)
    assert set(rows.metric) == {"accuracy"} and len(rows) == 4
    assert sorted(set(rows.level)) == ["factoid (nq_open)", "multiple choice (arc_easy)"]
