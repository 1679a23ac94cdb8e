"""Statistics of the Junk DNA hypothesis: normalized drop, its trend with strength and difficulty.

Pure: takes and returns pandas DataFrames, no I/O. The input is result rows, one per cell,
metric and step (columns spec, model, method, family, strength_name, strength, setting, level,
difficulty, seed, metric, step_name, step, value, n, cell_hash); dense rows have family "dense",
final metrics a null step.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

DENSE_FAMILY = "dense"

# A compressed row's dense partner: the dense model on the same task level, seed and metric.
DENSE_KEYS = ["model", "setting", "level", "seed", "metric"]
CURVE_KEYS = ["model", "family", "strength_name", "setting", "level", "seed", "metric"]
DROP_COLUMNS = [
    "model",
    "family",
    "strength_name",
    "strength",
    "setting",
    "level",
    "difficulty",
    "seed",
    "metric",
    "dense",
    "value",
    "drop",
    "n",
]
LEVEL_KEYS = ["model", "family", "setting", "metric", "level"]
TREND_COLUMNS = [
    *LEVEL_KEYS,
    "difficulty",
    "strength_count",
    "spearman_rho",
    "spearman_p",
    "slope",
    "slope_low",
    "slope_high",
]
FAMILY_KEYS = ["model", "family", "setting", "metric"]
# One score per seed of the same model, curve, strength, level, metric and step.
SCORE_KEYS = [
    "model",
    "family",
    "strength_name",
    "strength",
    "setting",
    "level",
    "metric",
    "step_name",
    "step",
]
SCORE_COLUMNS = [*SCORE_KEYS, "difficulty", "mean", "std", "seeds"]
DIFFICULTY_COLUMNS = [*FAMILY_KEYS, "level_count", "spearman_rho", "spearman_p"]


def human_gap_difficulty(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows with a `human` score get difficulty (human - dense) / human; `human` is dropped.

    The dense value is the same model's on the same level, seed and metric (setting 5's
    normalized human-model gap); without a dense row the difficulty is NaN.
    """
    if "human" not in rows.columns:
        return rows
    final_dense = (rows["family"] == DENSE_FAMILY) & rows["step"].isna()
    dense = rows.loc[final_dense, [*DENSE_KEYS, "value"]]
    merged = rows.merge(
        dense.rename(columns={"value": "dense_value"}), on=DENSE_KEYS, how="left", validate="m:1"
    )
    gap = (merged["human"] - merged["dense_value"]) / merged["human"]
    merged["difficulty"] = merged["difficulty"].astype(float).where(merged["human"].isna(), gap)
    return merged.drop(columns=["human", "dense_value"])


def _dense_values(rows: pd.DataFrame) -> pd.DataFrame:
    """The dense rows keyed by DENSE_KEYS; a duplicate key would silently double curves."""
    dense = rows.loc[rows["family"] == DENSE_FAMILY, [*DENSE_KEYS, "value", "n", "difficulty"]]
    duplicated = dense.duplicated(DENSE_KEYS, keep=False)
    if duplicated.any():
        keys = dense.loc[duplicated, DENSE_KEYS].drop_duplicates().to_dict("records")
        raise ValueError(f"several dense rows share model, setting, level, seed and metric: {keys}")
    return dense.rename(
        columns={"value": "dense", "n": "dense_n", "difficulty": "dense_difficulty"}
    )


def _compressed_with_dense(rows: pd.DataFrame) -> pd.DataFrame:
    """Every non-dense row left-joined to its dense partner; `_merge` says whether one exists."""
    compressed = rows.loc[rows["family"] != DENSE_FAMILY]
    return compressed.merge(_dense_values(rows), on=DENSE_KEYS, how="left", indicator=True)


def count_missing_dense(rows: pd.DataFrame) -> int:
    """How many non-dense rows have no dense partner, so `normalized_drops` leaves them out."""
    return int((_compressed_with_dense(rows)["_merge"] == "left_only").sum())


def normalized_drops(rows: pd.DataFrame) -> pd.DataFrame:
    """Each compressed row's normalized drop, (dense - compressed) / dense, in DROP_COLUMNS.

    Every sparsity curve (model, family, level, seed, metric) also gets its origin: the dense
    point at sparsity 0 with drop 0. Curves over bits or rank get none: the dense model is not
    at 0 bits or rank 0. A dense value of 0 gives drop NaN (the ratio is undefined), never
    inf. Rows without a dense partner are left out; `count_missing_dense` counts them.
    """
    paired = _compressed_with_dense(rows)
    paired = paired.loc[paired["_merge"] == "both"]
    sparsity_curves = paired.loc[paired["strength_name"] == "sparsity"]
    origins = sparsity_curves.drop_duplicates(CURVE_KEYS).assign(
        strength=0.0,
        value=lambda frame: frame["dense"],
        n=lambda frame: frame["dense_n"],
        difficulty=lambda frame: frame["dense_difficulty"],
    )
    drops = pd.concat([origins, paired], ignore_index=True)
    drops["strength"] = drops["strength"].astype(float)
    drops["drop"] = (drops["dense"] - drops["value"]) / drops["dense"].where(drops["dense"] != 0)
    drops = drops.sort_values(
        ["model", "family", "setting", "difficulty", "level", "seed", "metric", "strength"],
        kind="stable",
    )
    return drops[DROP_COLUMNS].reset_index(drop=True)


def _spearman(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Spearman's rho and p, or NaN for fewer than 3 points or a constant input (rho undefined)."""
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan")
    result = stats.spearmanr(x, y)
    return float(result.statistic), float(result.pvalue)


def _theil_sen(strength: np.ndarray, drop: np.ndarray) -> tuple[float, float, float]:
    """Theil-Sen slope of drop on strength with its 95% interval; NaN below 2 distinct strengths."""
    if len(np.unique(strength)) < 2:
        return float("nan"), float("nan"), float("nan")
    result = stats.theilslopes(drop, strength, alpha=0.95)
    return float(result.slope), float(result.low_slope), float(result.high_slope)


def level_trends(drops: pd.DataFrame) -> pd.DataFrame:
    """Per level curve, how the drop grows with strength: Spearman rho/p and Theil-Sen slope.

    Seeds are averaged first (mean drop per strength, NaN drops skipped); strengths whose
    mean drop is NaN are not counted. Columns are TREND_COLUMNS.
    """
    means = drops.groupby([*LEVEL_KEYS, "strength"], as_index=False).agg(
        difficulty=("difficulty", "mean"), drop=("drop", "mean")
    )
    records = []
    for key, curve in means.groupby(LEVEL_KEYS, sort=False):
        curve = curve.dropna(subset=["drop"])
        strength = curve["strength"].to_numpy(dtype=float)
        drop = curve["drop"].to_numpy(dtype=float)
        rho, p = _spearman(strength, drop)
        slope, slope_low, slope_high = _theil_sen(strength, drop)
        records.append(
            {
                **dict(zip(LEVEL_KEYS, key, strict=True)),
                "difficulty": float(curve["difficulty"].mean()) if len(curve) else float("nan"),
                "strength_count": len(curve),
                "spearman_rho": rho,
                "spearman_p": p,
                "slope": slope,
                "slope_low": slope_low,
                "slope_high": slope_high,
            }
        )
    return pd.DataFrame(records, columns=TREND_COLUMNS)


def difficulty_trend(trends: pd.DataFrame) -> pd.DataFrame:
    """Per curve family, Spearman rho/p of slope against difficulty (rho > 0: harder loses more).

    Only levels with a finite slope count, in `level_count`. Columns are DIFFICULTY_COLUMNS.
    """
    records = []
    for key, family in trends.groupby(FAMILY_KEYS, sort=False):
        family = family.loc[np.isfinite(family["slope"].to_numpy(dtype=float))]
        rho, p = _spearman(
            family["difficulty"].to_numpy(dtype=float), family["slope"].to_numpy(dtype=float)
        )
        records.append(
            {
                **dict(zip(FAMILY_KEYS, key, strict=True)),
                "level_count": len(family),
                "spearman_rho": rho,
                "spearman_p": p,
            }
        )
    return pd.DataFrame(records, columns=DIFFICULTY_COLUMNS)


def seed_scores(rows: pd.DataFrame) -> pd.DataFrame:
    """Each score's mean and sample standard deviation over seeds (NaN for a single seed), in
    SCORE_COLUMNS; fine-tuning runs every cell once per training seed."""
    grouped = rows.groupby(SCORE_KEYS, as_index=False, dropna=False)
    scores = grouped.agg(
        difficulty=("difficulty", "mean"),
        mean=("value", "mean"),
        std=("value", "std"),
        seeds=("seed", "nunique"),
    )
    scores = scores.sort_values(["model", "family", "strength", "difficulty", "level", "metric"])
    return scores[SCORE_COLUMNS].reset_index(drop=True)
