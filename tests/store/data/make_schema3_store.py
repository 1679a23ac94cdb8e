"""How tests/store/data/schema3.duckdb.gz was made: by jd's store at schema version 3 (commit
e839c60, before results had steps), through its own functions, as `jd run` would write it.

Run with that commit's jdspec first on the path:
    git archive --prefix=jd-e839c60/ e839c60 | tar -x -C /tmp
    PYTHONPATH=/tmp/jd-e839c60 python tests/store/data/make_schema3_store.py OUT.duckdb
    gzip -9 -n OUT.duckdb
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from jdspec import store
from jdspec.results import CellResult, ExampleRecord, MetricValue


def _cell(cell_hash: str, level: str) -> dict:
    return {
        "cell_hash": cell_hash,
        "variant_hash": "v1",
        "run_id": "r1",
        "model": "tiny-bert",
        "method": "magnitude",
        "family": "magnitude global (sparse)",
        "strength_name": "sparsity",
        "strength": 0.5,
        "setting": "data_adequacy",
        "level": level,
        "seed": 41,
        "cell": "{}",
    }


def _result(cell_hash: str, metrics: list[tuple[str, float]]) -> CellResult:
    examples = tuple(
        ExampleRecord(f"e{i}", "h", "1", "1", True, -0.5, (0.1, 0.9)) for i in range(2)
    )
    values = tuple(MetricValue(name, value, 2) for name, value in metrics)
    return CellResult(cell_hash, "done", 1_700_000_000.0, 1.0, values, examples)


def main() -> None:
    path = Path(sys.argv[1])
    training = [
        ("accuracy", 0.75),
        ("loss", 0.5),
        ("accuracy@epoch1", 0.5),
        ("accuracy@epoch2", 0.75),
        ("loss@epoch1", 0.7),
        ("loss@epoch2", 0.5),
    ]
    line = [
        ("accuracy", 0.5),
        ("loss", 0.9),
        ("loss@alpha0", 0.6),
        ("loss@alpha0.5", 1.25),
        ("loss@alpha1", 0.9),
        ("accuracy@alpha0.5", 0.25),
        ("barrier_loss", 0.5),
    ]
    with store.holding(path):
        store.write_members(
            path,
            pd.DataFrame(
                {
                    "spec": "v3",
                    "cell_hash": ["trained", "line"],
                    "level": ["sst2 100%", "rte"],
                    "difficulty": [0.0, None],
                }
            ),
        )
        store.write_cell(path, _cell("trained", "sst2 100%"), _result("trained", training[:2]))
        rerun = {**_cell("trained", "sst2 100%"), "run_id": "r2"}
        store.write_cell(path, rerun, _result("trained", training))  # the first moves to history
        store.write_cell(path, _cell("line", "rte"), _result("line", line))


if __name__ == "__main__":
    main()
