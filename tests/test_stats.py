"""Hand-worked checks of normalized drop, per-level trends and the difficulty trend."""

from __future__ import annotations

import itertools
import math
import warnings
from statistics import median

import numpy as np
import pandas as pd
import pytest

from jdspec.stats import (
    DIFFICULTY_COLUMNS,
    DROP_COLUMNS,
    TREND_COLUMNS,
    count_missing_dense,
    difficulty_trend,
    human_gap_difficulty,
    level_trends,
    normalized_drops,
    seed_scores,
)


def _row(
    family: str,
    strength: float,
    level: str,
    value: float,
    *,
    seed: int = 0,
    difficulty: float | None = None,
    model: str = "tiny",
    metric: str = "accuracy",
) -> dict[str, object]:
    """One result row; a level's difficulty defaults to its trailing number ('4 options' -> 4)."""
    dense = family == "dense"
    return {
        "spec": "demo",
        "model": model,
        "method": "none" if dense else "magnitude",
        "family": family,
        "strength_name": "sparsity",
        "strength": strength,
        "setting": "option_count",
        "level": level,
        "difficulty": float(level.split()[0]) if difficulty is None else difficulty,
        "seed": seed,
        "metric": metric,
        "step_name": None,
        "step": None,
        "value": value,
        "n": 100,
        "cell_hash": f"{family}-{strength}-{level}-{seed}-{metric}-{model}",
    }


def test_drops_are_exact_and_each_curve_starts_at_the_dense_origin() -> None:
    rows = pd.DataFrame(
        [
            _row("dense", 0.0, "2 options", 0.8),
            _row("magnitude", 0.5, "2 options", 0.6),
            _row("magnitude", 0.7, "2 options", 0.2),
        ]
    )
    drops = normalized_drops(rows)
    assert list(drops.columns) == DROP_COLUMNS
    assert drops["strength"].tolist() == [0.0, 0.5, 0.7]
    assert drops["family"].tolist() == ["magnitude"] * 3
    assert drops["dense"].tolist() == [0.8] * 3
    assert drops["value"].tolist() == [0.8, 0.6, 0.2]
    np.testing.assert_allclose(drops["drop"], [0.0, (0.8 - 0.6) / 0.8, (0.8 - 0.2) / 0.8])


def test_each_family_gets_its_own_origin() -> None:
    rows = pd.DataFrame(
        [
            _row("dense", 0.0, "2 options", 0.5),
            _row("magnitude", 0.5, "2 options", 0.25),
            _row("magnitude global", 0.5, "2 options", 0.5),
        ]
    )
    drops = normalized_drops(rows)
    origins = drops.loc[drops["strength"] == 0.0]
    assert sorted(origins["family"]) == ["magnitude", "magnitude global"]
    assert origins["drop"].tolist() == [0.0, 0.0]
    assert drops.loc[drops["strength"] == 0.5, "drop"].tolist() == [0.5, 0.0]


def test_rows_without_a_dense_partner_are_left_out_and_counted() -> None:
    rows = pd.DataFrame(
        [
            _row("dense", 0.0, "2 options", 0.8),
            _row("magnitude", 0.5, "2 options", 0.4),
            _row("magnitude", 0.5, "4 options", 0.3),  # no dense "4 options"
            _row("magnitude", 0.5, "2 options", 0.3, seed=1),  # no dense seed 1
        ]
    )
    drops = normalized_drops(rows)
    assert count_missing_dense(rows) == 2
    assert set(drops["level"]) == {"2 options"}
    assert set(drops["seed"]) == {0}
    assert len(drops) == 2


def test_dense_zero_gives_nan_drop_not_inf() -> None:
    rows = pd.DataFrame(
        [
            _row("dense", 0.0, "8 options", 0.0),
            _row("magnitude", 0.5, "8 options", 0.1),
        ]
    )
    drops = normalized_drops(rows)
    assert drops["drop"].isna().all()
    assert not np.isinf(drops["drop"]).any()


def test_duplicate_dense_rows_are_refused() -> None:
    rows = pd.DataFrame(
        [
            _row("dense", 0.0, "2 options", 0.8),
            _row("dense", 0.0, "2 options", 0.7),
            _row("magnitude", 0.5, "2 options", 0.4),
        ]
    )
    with pytest.raises(ValueError, match="several dense rows"):
        normalized_drops(rows)


def _median_pairwise_slope(x: list[float], y: list[float]) -> float:
    """Theil-Sen by definition: the median of the slopes over all pairs with distinct x."""
    slopes = [
        (y[j] - y[i]) / (x[j] - x[i])
        for i, j in itertools.combinations(range(len(x)), 2)
        if x[j] != x[i]
    ]
    return median(slopes)


def test_theil_sen_slope_matches_the_median_pairwise_slope() -> None:
    strengths = [0.2, 0.4, 0.6, 0.8]
    values = [0.9, 0.7, 0.65, 0.1]  # dense 1.0: drops 0, 0.1, 0.3, 0.35, 0.9 -- not a line
    rows = pd.DataFrame(
        [_row("dense", 0.0, "4 options", 1.0)]
        + [_row("magnitude", s, "4 options", v) for s, v in zip(strengths, values, strict=True)]
    )
    trends = level_trends(normalized_drops(rows))
    assert list(trends.columns) == TREND_COLUMNS
    [trend] = trends.to_dict("records")
    x = [0.0, *strengths]
    y = [(1.0 - v) / 1.0 for v in [1.0, *values]]
    assert trend["slope"] == pytest.approx(_median_pairwise_slope(x, y), abs=1e-12)
    assert trend["slope_low"] <= trend["slope"] <= trend["slope_high"]
    assert trend["strength_count"] == 5
    assert trend["difficulty"] == 4.0


def test_spearman_is_one_on_a_monotone_curve() -> None:
    rows = pd.DataFrame(
        [_row("dense", 0.0, "2 options", 1.0)]
        + [_row("magnitude", s, "2 options", 1.0 - s**2) for s in (0.1, 0.3, 0.5, 0.9)]
    )
    [trend] = level_trends(normalized_drops(rows)).to_dict("records")
    assert trend["spearman_rho"] == pytest.approx(1.0)
    assert trend["spearman_p"] < 0.05


def test_too_few_or_constant_points_give_nan_without_warnings() -> None:
    rows = pd.DataFrame(
        [
            _row("dense", 0.0, "2 options", 1.0),
            _row("magnitude", 0.5, "2 options", 0.5),  # 2 strengths: no Spearman
            _row("dense", 0.0, "4 options", 1.0),
            _row("magnitude", 0.5, "4 options", 1.0),
            _row("magnitude", 0.7, "4 options", 1.0),  # constant drop 0: no Spearman
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trends = level_trends(normalized_drops(rows)).set_index("level")
    assert math.isnan(trends.loc["2 options", "spearman_rho"])
    assert math.isnan(trends.loc["2 options", "spearman_p"])
    assert trends.loc["2 options", "slope"] == pytest.approx(1.0)
    assert math.isnan(trends.loc["4 options", "spearman_rho"])
    assert trends.loc["4 options", "slope"] == 0.0


def test_seeds_are_averaged_before_the_trend() -> None:
    seed_values = {0: [0.8, 0.6, 0.4], 1: [0.6, 0.2, 0.0]}  # dense 1.0 for both seeds
    rows = pd.DataFrame(
        [
            _row("magnitude", strength, "2 options", value, seed=seed)
            for seed, values in seed_values.items()
            for strength, value in zip((0.2, 0.4, 0.6), values, strict=True)
        ]
        + [_row("dense", 0.0, "2 options", 1.0, seed=seed) for seed in seed_values]
    )
    [trend] = level_trends(normalized_drops(rows)).to_dict("records")
    # Mean drops per strength: 0 at 0, 0.3 at 0.2, 0.6 at 0.4, 0.8 at 0.6.
    x, y = [0.0, 0.2, 0.4, 0.6], [0.0, 0.3, 0.6, 0.8]
    assert trend["strength_count"] == 4
    assert trend["slope"] == pytest.approx(_median_pairwise_slope(x, y), abs=1e-12)
    assert trend["spearman_rho"] == pytest.approx(1.0)


def _three_level_rows(slopes: dict[str, float]) -> pd.DataFrame:
    """Linear drop curves, drop = slope * strength, one per level, dense value 1."""
    return pd.DataFrame(
        [
            _row("magnitude", strength, level, 1.0 - slope * strength)
            for level, slope in slopes.items()
            for strength in (0.25, 0.5, 0.75)
        ]
        + [_row("dense", 0.0, level, 1.0) for level in slopes]
    )


def test_difficulty_trend_is_positive_when_harder_levels_lose_more() -> None:
    rows = _three_level_rows({"2 options": 0.2, "4 options": 0.5, "8 options": 0.9})
    trend = difficulty_trend(level_trends(normalized_drops(rows)))
    assert list(trend.columns) == DIFFICULTY_COLUMNS
    [family] = trend.to_dict("records")
    assert family["level_count"] == 3
    assert family["spearman_rho"] == pytest.approx(1.0)


def test_difficulty_trend_is_negative_when_easier_levels_lose_more() -> None:
    rows = _three_level_rows({"2 options": 0.9, "4 options": 0.5, "8 options": 0.2})
    [family] = difficulty_trend(level_trends(normalized_drops(rows))).to_dict("records")
    assert family["spearman_rho"] == pytest.approx(-1.0)


def test_levels_without_a_slope_are_not_counted() -> None:
    rows = pd.concat(
        [
            _three_level_rows({"2 options": 0.2, "4 options": 0.5}),
            pd.DataFrame(
                [
                    _row("dense", 0.0, "8 options", 0.0),
                    _row("magnitude", 0.5, "8 options", 0.0),
                ]
            ),
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        [family] = difficulty_trend(level_trends(normalized_drops(rows))).to_dict("records")
    assert family["level_count"] == 2
    assert math.isnan(family["spearman_rho"])


def test_empty_input_gives_empty_tables_with_columns() -> None:
    rows = pd.DataFrame([_row("dense", 0.0, "2 options", 1.0)])
    drops = normalized_drops(rows)
    trends = level_trends(drops)
    assert drops.empty and list(drops.columns) == DROP_COLUMNS
    assert trends.empty and list(trends.columns) == TREND_COLUMNS
    assert list(difficulty_trend(trends).columns) == DIFFICULTY_COLUMNS


def test_bits_curves_get_no_origin_at_zero() -> None:
    rows = pd.DataFrame(
        [
            _row("dense", 0.0, "4 options", 0.8),
            {**_row("gptq", 4.0, "4 options", 0.6), "strength_name": "bits"},
            {**_row("gptq", 3.0, "4 options", 0.4), "strength_name": "bits"},
        ]
    )
    drops = normalized_drops(rows)
    assert sorted(drops["strength"]) == [3.0, 4.0]
    assert drops.set_index("strength")["drop"].to_dict() == pytest.approx({3.0: 0.5, 4.0: 0.25})


def test_human_gap_difficulty_uses_each_models_own_dense_score() -> None:
    """(human - dense) / human per model and metric, given to dense and compressed rows alike."""
    rows = pd.DataFrame(
        [
            _row("dense", 0.0, "2 piqa", 0.75, difficulty=math.nan),
            _row("magnitude", 0.5, "2 piqa", 0.60, difficulty=math.nan),
            _row("dense", 0.0, "2 piqa", 0.50, difficulty=math.nan, model="other"),
            _row("dense", 0.0, "2 piqa", 0.70, difficulty=math.nan, metric="accuracy_norm"),
            _row("dense", 0.0, "4 options", 0.40),
        ]
    ).assign(human=[0.95, 0.95, 0.95, 0.95, math.nan])
    filled = human_gap_difficulty(rows)
    assert "human" not in filled.columns
    assert filled["difficulty"].tolist() == pytest.approx(
        [
            (0.95 - 0.75) / 0.95,
            (0.95 - 0.75) / 0.95,
            (0.95 - 0.50) / 0.95,
            (0.95 - 0.70) / 0.95,
            4.0,
        ]
    )


def test_human_gap_without_dense_is_nan() -> None:
    rows = pd.DataFrame([_row("magnitude", 0.5, "2 piqa", 0.6)]).assign(human=[0.9])
    assert math.isnan(human_gap_difficulty(rows)["difficulty"].iloc[0])


def test_seed_scores_are_mean_and_sample_std() -> None:
    rows = pd.DataFrame(
        [
            _row("dense", 0.0, "2 options", value, seed=seed)
            for seed, value in enumerate([0.8, 0.9, 0.7])
        ]
        + [_row("magnitude", 0.5, "2 options", 0.6)]
    )
    scores = seed_scores(rows).set_index("family")
    assert scores.loc["dense", "mean"] == pytest.approx(0.8)
    assert scores.loc["dense", "std"] == pytest.approx(0.1)  # sqrt(((0)^2 + 0.1^2 + 0.1^2) / 2)
    assert scores.loc["dense", "seeds"] == 3
    assert scores.loc["magnitude", "seeds"] == 1 and math.isnan(scores.loc["magnitude", "std"])
