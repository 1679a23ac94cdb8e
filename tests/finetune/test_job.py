"""Fine-tuning settings end to end on a tiny random BERT and shipped data: run, store, resume,
report (setting 1, Section 5's transfer modes, Appendix C's connectivity)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from jdspec import store
from jdspec.cache import checkpoint_folder
from jdspec.plan import all_cells, expand
from jdspec.report import write_report
from jdspec.run import report_rows, run_spec
from jdspec.spec import load_spec

pytestmark = pytest.mark.integration


def _spec(model_dir: Path, spectrum: dict, transfer: list[str]) -> dict:
    return {
        "name": "tiny-finetune",
        "models": [{"source": "local", "path": str(model_dir)}],
        "compressors": [{"method": "magnitude", "scope": "global", "sparsity": 0.5}],
        "spectrum": {"source": "offline", "n_train": 24, **spectrum},
        "finetuning": {
            "learning_rate": 1e-3,
            "epochs": 2,
            "batch_size": 8,
            "max_length": 32,
            "seeds": [1, 2],
            "transfer": transfer,
        },
        "evaluation": {"n_examples": 16, "batch_size": 8, "device": "cpu"},
    }


def _run(tmp_path: Path, spec: dict):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    loaded = load_spec(path)
    store_path = tmp_path / "jd.duckdb"
    summary = run_spec(loaded, store_path)
    assert (summary.failed, summary.status) == (0, "finished")
    return loaded, store_path, summary


def test_data_adequacy_with_transfer_modes(
    tiny_bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JD_CACHE", str(tmp_path / "cache"))
    spectrum = {"setting": "data_adequacy", "task": "sst2", "fractions": [1.0, 0.5]}
    spec, path, summary = _run(tmp_path, _spec(tiny_bert_dir, spectrum, ["sparse", "dense_frozen"]))
    # dense: 2 levels x 2 seeds; pruned: 2 levels x 2 seeds x 2 modes
    assert summary.done == 4 + 8
    rows = report_rows(spec, path)
    final = rows.loc[(rows.metric == "accuracy") & rows.step.isna()]
    assert len(final) == 12 and final.value.between(0, 1).all() and (final.n == 16).all()
    steps = rows[["metric", "step_name", "step"]].drop_duplicates()
    steps = steps.fillna({"step_name": "", "step": -1.0})
    assert sorted(steps.itertuples(index=False, name=None)) == [
        ("accuracy", "", -1.0),
        ("accuracy", "epoch", 1.0),
        ("accuracy", "epoch", 2.0),
        ("loss", "", -1.0),
        ("loss", "epoch", 1.0),
        ("loss", "epoch", 2.0),
    ]
    # The final metrics are the last epoch's.
    by_cell = rows.fillna({"step": 0}).pivot_table(
        index="cell_hash", columns=["metric", "step"], values="value"
    )
    assert (by_cell[("accuracy", 0)] == by_cell[("accuracy", 2)]).all()
    sql_final = store.user_query(
        path, "SELECT count(*) AS n FROM jd_results WHERE metric = 'accuracy' AND step IS NULL"
    )
    assert sql_final.n.item() == 12
    families = set(rows.family)
    assert families == {"dense", "magnitude global (sparse)", "magnitude global (dense_frozen)"}
    examples = store.read_frame(path, "SELECT cell_hash, correct FROM examples")
    assert len(examples) == 12 * 16
    # Stored cells leave no checkpoint behind.
    assert not any(checkpoint_folder(cell.cell_hash).exists() for cell in all_cells(expand(spec)))
    variants = store.read_frame(path, "SELECT method, sparsity FROM variants ORDER BY method")
    assert variants.method.tolist() == ["magnitude", "none"]
    assert variants.sparsity.iloc[0] == pytest.approx(0.5, abs=1e-3)

    report = write_report(spec.name, rows, tmp_path / "report")
    scores = report.scores.loc[report.scores.metric == "accuracy"]
    assert (scores.seeds == 2).all() and scores["std"].notna().all()
    drops = report.drops.loc[report.drops.metric == "accuracy"]
    assert set(drops.family) == {"magnitude global (sparse)", "magnitude global (dense_frozen)"}
    assert run_spec(spec, path).status == "nothing to do"


def test_connectivity_of_identical_end_points_has_no_barrier(
    tiny_bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JD_CACHE", str(tmp_path / "cache"))
    spectrum = {"setting": "mode_connectivity", "tasks": ["rte"], "alpha_count": 3}
    raw = _spec(tiny_bert_dir, spectrum, ["sparse"])
    raw["finetuning"]["seeds"] = [1]
    spec, path, summary = _run(tmp_path, raw)
    assert summary.done == 2
    stored = report_rows(spec, path)
    assert set(stored.step_name.dropna()) == {"alpha"}
    rows = stored.fillna({"step": -1}).set_index(["family", "metric", "step"])["value"]
    # The dense cell joins the dense model to itself: flat line, no barrier.
    assert rows[("dense", "barrier_loss", -1)] == 0.0
    assert rows[("dense", "loss", 0.0)] == rows[("dense", "loss", 1.0)]
    pruned = "magnitude global (sparse)"
    assert rows[(pruned, "barrier_loss", -1)] >= 0.0
    # Both lines start at the same dense model.
    assert rows[(pruned, "loss", 0.0)] == pytest.approx(rows[("dense", "loss", 0.0)], abs=1e-6)
    assert rows[(pruned, "loss", -1)] == rows[(pruned, "loss", 1.0)]
    report = write_report(spec.name, report_rows(spec, path), tmp_path / "report")
    assert (tmp_path / "report" / "connectivity.png").exists()
    assert "barrier_loss" in set(report.scores.metric)


def test_killed_training_cell_resumes_from_its_last_epoch(
    tiny_bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import jdspec.finetune.train as finetune

    spectrum = {"setting": "data_adequacy", "task": "sst2", "fractions": [1.0]}
    raw = _spec(tiny_bert_dir, spectrum, ["sparse"])
    raw["compressors"] = [{"method": "none"}]
    raw["finetuning"] |= {"seeds": [1], "epochs": 3}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    spec = load_spec(path)
    evaluations: list[int] = []
    real_evaluate = finetune.evaluate

    def evaluate(*args: object, **kwargs: object) -> object:
        evaluations.append(1)
        if killing and len(evaluations) == 3:  # the third epoch's evaluation: killed
            raise KeyboardInterrupt
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(finetune, "evaluate", evaluate)
    monkeypatch.setenv("JD_CACHE", str(tmp_path / "cache"))
    killed = tmp_path / "killed.duckdb"
    killing = True
    with pytest.raises(KeyboardInterrupt):
        run_spec(spec, killed)
    killing = False
    (cell,) = all_cells(expand(spec))
    assert (checkpoint_folder(cell.cell_hash) / "training.pt").exists()
    evaluations.clear()
    assert run_spec(spec, killed).done == 1
    assert len(evaluations) == 1  # only the third epoch ran again
    assert not checkpoint_folder(cell.cell_hash).exists()

    monkeypatch.setenv("JD_CACHE", str(tmp_path / "fresh-cache"))
    whole = tmp_path / "whole.duckdb"
    assert run_spec(spec, whole).done == 1
    query = "SELECT metric, step, value FROM results ORDER BY metric, step NULLS FIRST"
    assert store.read_frame(killed, query).equals(store.read_frame(whole, query))
