"""Fine-tuning settings: nested seeded subsets, the recipe's rules, levels and their cells."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from jdspec.errors import SpecError
from jdspec.plan import all_cells, expand
from jdspec.spec import load_spec
from jdspec.tasks.finetune import FinetuneLevel, FineTuning, training_subset

SETTING1 = """\
name: adequacy
models:
  - {source: hub, id: FacebookAI/roberta-base}
compressors:
  - method: magnitude
    scope: global
    sweep: {sparsity: [0.3, 0.6]}
spectrum:
  setting: data_adequacy
  task: sst2
  fractions: [0.1, 1.0, 0.5]
finetuning:
  seeds: [41, 42]
  transfer: [sparse, dense_frozen]
"""


def _level(fraction: float, subset_seed: int = 0, n_train: int | None = None) -> FinetuneLevel:
    return FinetuneLevel(
        task="sst2",
        source="offline",
        revision="0.9.0",
        split_seed=0,
        n_train=n_train,
        train_fraction=fraction,
        subset_seed=subset_seed,
        n_test=None,
    )


def test_subsets_are_nested_and_reproducible() -> None:
    pool = list(range(1000))
    fractions = [0.1, 0.25, 0.5, 0.75, 1.0]
    subsets = [training_subset(pool, _level(fraction)) for fraction in fractions]
    assert [len(subset) for subset in subsets] == [100, 250, 500, 750, 1000]
    for smaller, larger in zip(subsets, subsets[1:], strict=False):
        assert set(smaller) < set(larger)
    assert training_subset(pool, _level(0.25)) == subsets[1]  # same seed, same subset
    other = training_subset(pool, _level(0.25, subset_seed=1))
    assert other != subsets[1] and len(other) == 250
    assert subsets[1] != pool[:250]  # a random sample, not the file's prefix


def test_pool_is_drawn_before_fractions() -> None:
    pool = list(range(1000))
    whole = training_subset(pool, _level(1.0, n_train=200))
    half = training_subset(pool, _level(0.5, n_train=200))
    assert len(whole) == 200 and len(half) == 100 and set(half) < set(whole)
    assert whole == training_subset(pool, _level(1.0))[:200]
    assert len(training_subset(pool, _level(0.0001))) == 1  # at least one example
    assert training_subset(pool, _level(1.0, n_train=2000)) == training_subset(pool, _level(1.0))


def test_recipe_defaults_are_the_papers() -> None:
    recipe = FineTuning()
    assert (recipe.learning_rate, recipe.epochs, recipe.batch_size) == (2e-5, 3, 32)
    assert (recipe.warmup_ratio, recipe.max_length, recipe.seeds) == (0.06, 128, (41, 42, 43))
    run = recipe.run(42, "dense_frozen")
    assert run.seed == 42 and run.transfer == "dense_frozen" and run.learning_rate == 2e-5
    with pytest.raises(ValidationError, match="baseline"):
        FineTuning(transfer=("dense",))
    with pytest.raises(ValidationError, match="repeated"):
        FineTuning(seeds=(1, 1))


def test_cells_per_seed_and_transfer_mode(tmp_path: Path) -> None:
    path = tmp_path / "adequacy.yaml"
    path.write_text(SETTING1)
    spec = load_spec(path)
    levels = spec.spectrum.expand(spec.evaluation.n_examples, spec.evaluation.seed)
    assert [level.label for level in levels] == ["sst2 100%", "sst2 50%", "sst2 10%"]
    assert [level.difficulty for level in levels] == [0.0, 0.5, 0.9]
    cells = all_cells(expand(spec))
    # dense: 3 levels x 2 seeds; each sparsity: 3 levels x 2 seeds x 2 modes
    assert len(cells) == 6 + 2 * 12 == len({cell.cell_hash for cell in cells})
    dense = [cell for cell in cells if cell.method == "none"]
    assert {cell.family for cell in dense} == {"dense"}
    assert {cell.level.config.training.transfer for cell in dense} == {"dense"}
    families = {cell.family for cell in cells if cell.method == "magnitude"}
    assert families == {"magnitude global (sparse)", "magnitude global (dense_frozen)"}
    assert {cell.seed for cell in cells} == {41, 42}
    assert all(cell.seed == cell.level.config.training.seed for cell in cells)
    assert spec.reported_metrics() == ("accuracy", "loss")


def test_finetuning_section_rules(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(SETTING1.replace("method: magnitude\n    scope: global", "method: wanda"))
    with pytest.raises(SpecError) as raised:
        load_spec(path)
    assert "line 5, compressors[0].method" in str(raised.value)
    assert "magnitude, none" in str(raised.value)
    path.write_text(SETTING1.replace("task: sst2", "task: sst3"))
    with pytest.raises(SpecError, match=r"spectrum.task.*did you mean 'sst2'"):
        load_spec(path)
    path.write_text(
        SETTING1.replace(
            "  setting: data_adequacy\n  task: sst2\n  fractions: [0.1, 1.0, 0.5]",
            "  setting: k_shot\n  dataset: {name: mmlu, source: hub}\n  levels: [{shots: 0}]",
        )
    )
    with pytest.raises(SpecError) as raised:
        load_spec(path)
    assert "line 12, finetuning: applies to the settings" in str(raised.value)
    path.write_text(SETTING1.replace("[0.1, 1.0, 0.5]", "[0.1, 1.5]"))
    with pytest.raises(SpecError, match=r"spectrum.fractions.*\(0, 1\]"):
        load_spec(path)


def test_human_gap_difficulty_from_published_scores(tmp_path: Path) -> None:
    spec = load_spec(Path(__file__).parents[2] / "specs" / "transfer_modes.yaml")
    levels = spec.spectrum.expand(None, 0)
    by_task = {level.label: level for level in levels}
    assert by_task["sst2"].difficulty == pytest.approx((0.978 - 0.964) / 0.978)
    assert by_task["commonsense_qa"].difficulty == pytest.approx((0.889 - 0.721) / 0.889)
    assert all(level.human is None for level in levels)


def test_connectivity_levels(tmp_path: Path) -> None:
    spec = load_spec(Path(__file__).parents[2] / "specs" / "lmc.yaml")
    cells = all_cells(expand(spec))
    assert {cell.level.config.kind for cell in cells} == {"connectivity"}
    assert {cell.level.config.alpha_count for cell in cells} == {11}
    assert "barrier_loss" in spec.reported_metrics()


def test_offline_spectrum_names_what_is_shipped(tmp_path: Path) -> None:
    path = tmp_path / "offline.yaml"
    path.write_text(SETTING1.replace("task: sst2", "task: cola\n  source: offline"))
    with pytest.raises(SpecError, match=r"spectrum: cola not shipped offline; use source: hub"):
        load_spec(path)
