"""A spec's report: the statistics as CSV tables and the paper's drop-vs-strength chart.

The chart is the Junk DNA figure: normalized drop against compression strength, one line
per difficulty level (darker = harder), one panel per family and model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import altair as alt
import pandas as pd

from jdspec.stats import difficulty_trend, level_trends, normalized_drops, seed_scores

PANEL_WIDTH = 320
PANEL_HEIGHT = 240
# Viridis from light green (easy) to dark purple (hard); its yellow end is unreadable on white.
LEVEL_COLORS = alt.SchemeParams(name="viridis", extent=[0.85, 0.0])
# What one plotted point averages over seeds.
POINT_KEYS = [
    "model",
    "family",
    "strength_name",
    "strength",
    "setting",
    "level",
    "difficulty",
    "metric",
]


@dataclass(frozen=True, eq=False)
class Report:
    """What `write_report` computed and where it wrote it."""

    drops: pd.DataFrame
    trends: pd.DataFrame
    difficulty: pd.DataFrame
    scores: pd.DataFrame
    paths: tuple[Path, ...]


def write_report(spec_name: str, rows: pd.DataFrame, out_dir: Path) -> Report:
    """Compute a spec's statistics from its result rows and write tables and charts to out_dir.

    Writes drops.csv, trends.csv, difficulty.csv, scores.csv (mean and standard deviation
    over seeds), drop.png and drop.html (self-contained, so it opens with no network), and
    for Appendix C's cells connectivity.png and .html. Metrics measured along the way (a step:
    each epoch, each point of a line) are in scores.csv, not in the drop statistics.
    """
    final = rows.loc[rows["step"].isna()]
    drops = normalized_drops(final)
    trends = level_trends(drops)
    difficulty = difficulty_trend(trends)
    scores = seed_scores(rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = {
        "drops.csv": drops,
        "trends.csv": trends,
        "difficulty.csv": difficulty,
        "scores.csv": scores,
    }
    for name, table in tables.items():
        table.to_csv(out_dir / name, index=False)
    charts = {"drop": drop_chart(spec_name, drops)}
    along_line = scores.loc[scores["step_name"] == "alpha"]
    if not along_line.empty:
        charts["connectivity"] = connectivity_chart(spec_name, along_line)
    for name, chart in charts.items():
        chart.save(out_dir / f"{name}.html", inline=True)
        chart.save(out_dir / f"{name}.png", scale_factor=2)
    files = [*tables, *(f"{name}.{suffix}" for name in charts for suffix in ("html", "png"))]
    paths = tuple(out_dir / name for name in files)
    return Report(drops=drops, trends=trends, difficulty=difficulty, scores=scores, paths=paths)


def drop_chart(spec_name: str, drops: pd.DataFrame) -> alt.VConcatChart:
    """One faceted drop-vs-strength chart per setting and metric, stacked vertically."""
    means = drops.groupby(POINT_KEYS, as_index=False).agg(
        drop=("drop", "mean"), dense=("dense", "mean"), value=("value", "mean")
    )
    charts = [
        _panel_chart(spec_name, setting, metric, panel)
        for (setting, metric), panel in means.groupby(["setting", "metric"])
    ]
    return alt.vconcat(*charts).resolve_scale(color="independent")


def _panel_chart(spec_name: str, setting: str, metric: str, means: pd.DataFrame) -> alt.Chart:
    """Lines of mean drop per level, faceted by family (columns) and model (rows, if several)."""
    levels = means.drop_duplicates("level").sort_values(["difficulty", "level"])["level"].tolist()
    strength_title = " / ".join(sorted(means["strength_name"].unique()))
    facets = {"column": alt.Column("family:N", title=None)}
    if means["model"].nunique() > 1:
        facets["row"] = alt.Row("model:N", title=None)
    return (
        alt.Chart(means, title=alt.Title(f"{spec_name}: {metric}", subtitle=setting))
        .mark_line(point=True)
        .encode(
            x=alt.X("strength:Q", title=strength_title),
            y=alt.Y("drop:Q", title="normalized drop", axis=alt.Axis(format="%")),
            color=alt.Color(
                "level:O",
                sort=levels,
                scale=alt.Scale(domain=levels, scheme=LEVEL_COLORS),
                legend=alt.Legend(title="level (easy → hard)"),
            ),
            tooltip=[
                alt.Tooltip("level:N"),
                alt.Tooltip("strength:Q", format=".3~f"),
                alt.Tooltip("drop:Q", format=".1%"),
                alt.Tooltip("dense:Q", format=".3~f"),
                alt.Tooltip("value:Q", format=".3~f"),
            ],
            **facets,
        )
        .properties(width=PANEL_WIDTH, height=PANEL_HEIGHT)
        .resolve_scale(x="independent")  # sparsity, bits and rank families share no axis
    )


def connectivity_chart(spec_name: str, scores: pd.DataFrame) -> alt.VConcatChart:
    """Appendix C: each measure along the line from the dense (0) to the pruned (1) fine-tuned
    model, one line per strength, one panel per task; a hump is a barrier between basins."""
    points = scores.rename(columns={"metric": "measure", "step": "alpha"})
    charts = [
        alt.Chart(panel, title=alt.Title(f"{spec_name}: {measure}", subtitle="dense → pruned"))
        .mark_line(point=True)
        .encode(
            x=alt.X("alpha:Q", title="α (0: dense transfer, 1: pruned transfer)"),
            y=alt.Y("mean:Q", title=f"test {measure}", scale=alt.Scale(zero=False)),
            color=alt.Color("strength:O", title="sparsity", scale=alt.Scale(scheme="viridis")),
            tooltip=[
                alt.Tooltip("family:N"),
                alt.Tooltip("strength:Q", format=".3~f"),
                alt.Tooltip("alpha:Q", format=".2f"),
                alt.Tooltip("mean:Q", format=".4f"),
                alt.Tooltip("std:Q", format=".4f"),
            ],
            column=alt.Column("level:N", title=None),
            row=alt.Row("family:N", title=None),
        )
        .properties(width=PANEL_WIDTH, height=PANEL_HEIGHT)
        for measure, panel in points.groupby("measure")
    ]
    return alt.vconcat(*charts).resolve_scale(color="independent")
