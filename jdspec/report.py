"""A spec's report: the statistics as CSV tables and the paper's drop-vs-strength chart.

The chart is the Junk DNA figure: normalized drop against compression strength, one line
per difficulty level (darker = harder), one panel per family and model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import altair as alt
import pandas as pd

from jdspec.stats import difficulty_trend, level_trends, normalized_drops

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
    paths: tuple[Path, ...]


def write_report(spec_name: str, rows: pd.DataFrame, out_dir: Path) -> Report:
    """Compute a spec's statistics from its result rows and write tables and charts to out_dir.

    Writes drops.csv, trends.csv, difficulty.csv, drop.png and drop.html (self-contained,
    so it opens with no network).
    """
    drops = normalized_drops(rows)
    trends = level_trends(drops)
    difficulty = difficulty_trend(trends)
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = {"drops.csv": drops, "trends.csv": trends, "difficulty.csv": difficulty}
    for name, table in tables.items():
        table.to_csv(out_dir / name, index=False)
    chart = drop_chart(spec_name, drops)
    chart.save(out_dir / "drop.html", inline=True)
    chart.save(out_dir / "drop.png", scale_factor=2)
    paths = tuple(out_dir / name for name in [*tables, "drop.html", "drop.png"])
    return Report(drops=drops, trends=trends, difficulty=difficulty, paths=paths)


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
