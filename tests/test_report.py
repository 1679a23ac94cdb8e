"""The report writes tables equal to the statistics and self-contained charts."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from jdspec.report import Report, drop_chart, write_report
from jdspec.stats import difficulty_trend, level_trends, normalized_drops

LEVELS = {"2 options": 2.0, "4 options": 4.0, "8 options": 8.0}
STRENGTHS = [0.2, 0.4, 0.6, 0.8]
FAMILIES = {"magnitude": 1.0, "magnitude global": 0.5}  # how fast each family loses accuracy


def _rows() -> pd.DataFrame:
    """Two families x three levels x four strengths, two seeds; harder levels lose more."""
    records = []
    for seed in (0, 1):
        for level, difficulty in LEVELS.items():
            dense_value = 0.9 - 0.05 * difficulty
            families = {"dense": 0.0, **FAMILIES}
            for family, rate in families.items():
                for strength in [0.0] if family == "dense" else STRENGTHS:
                    loss = min(1.0, rate * difficulty / 8 * strength**2 + 0.01 * seed)
                    records.append(
                        {
                            "spec": "demo",
                            "model": "tiny",
                            "method": family.split()[0],
                            "family": family,
                            "strength_name": "sparsity",
                            "strength": strength,
                            "setting": "option_count",
                            "level": level,
                            "difficulty": difficulty,
                            "seed": seed,
                            "metric": "accuracy",
                            "step_name": None,
                            "step": None,
                            "value": dense_value if family == "dense" else dense_value * (1 - loss),
                            "n": 50,
                            "cell_hash": f"{family}-{strength}-{level}-{seed}",
                        }
                    )
    return pd.DataFrame(records)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    return write_report("demo", _rows(), tmp_path_factory.mktemp("report"))


def test_every_file_is_written(report: Report) -> None:
    names = sorted(path.name for path in report.paths)
    assert names == [
        "difficulty.csv",
        "drop.html",
        "drop.png",
        "drops.csv",
        "scores.csv",
        "trends.csv",
    ]
    for path in report.paths:
        assert path.is_file() and path.stat().st_size > 0


def test_tables_round_trip_and_equal_the_statistics(report: Report) -> None:
    drops = normalized_drops(_rows())
    trends = level_trends(drops)
    expected = {
        "drops.csv": drops,
        "trends.csv": trends,
        "difficulty.csv": difficulty_trend(trends),
    }
    out_dir = report.paths[0].parent
    for name, table in expected.items():
        pd.testing.assert_frame_equal(pd.read_csv(out_dir / name), table, check_dtype=False)
    pd.testing.assert_frame_equal(report.drops, drops)
    pd.testing.assert_frame_equal(report.trends, trends)


def test_png_is_a_png(report: Report) -> None:
    png = next(path for path in report.paths if path.suffix == ".png")
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_html_loads_no_external_script(report: Report) -> None:
    html = next(path for path in report.paths if path.suffix == ".html").read_text()
    assert "vega" in html.lower()
    sources = re.findall(r"<script[^>]*\bsrc\s*=\s*[\"']?([^\"' >]+)", html, flags=re.IGNORECASE)
    assert sources == []
    assert "https://cdn" not in html


def test_harder_levels_drop_more_in_the_synthetic_study(report: Report) -> None:
    assert (report.difficulty["spearman_rho"] == 1.0).all()
    assert report.difficulty["level_count"].tolist() == [3, 3]


def test_level_colors_follow_difficulty_not_the_alphabet() -> None:
    names = {"2 options": "easy", "4 options": "medium", "8 options": "extreme"}
    rows = _rows().replace({"level": names})
    spec = drop_chart("demo", normalized_drops(rows)).to_dict()
    [panel] = spec["vconcat"]
    color = panel["encoding"]["color"]
    assert color["scale"]["domain"] == ["easy", "medium", "extreme"]
    assert color["legend"]["title"] == "level (easy → hard)"
    assert panel["encoding"]["x"]["title"] == "sparsity"
