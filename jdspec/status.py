"""What a store holds, for `jd status`: specs, cells by status, recent runs, the writer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jdspec import store


def store_status(path: Path) -> dict[str, Any]:
    """Specs with their done/failed counts, the ten latest runs, and who is writing now."""
    holder = store.read_lock_holder(path)
    specs = store.read_frame(
        path,
        """
        SELECT s.spec, count(*) AS cells,
               count(*) FILTER (WHERE c.status = 'done') AS done,
               count(*) FILTER (WHERE c.status = 'failed') AS failed
        FROM spec_cells s LEFT JOIN cells c USING (cell_hash) GROUP BY s.spec ORDER BY s.spec""",
    )
    runs = store.read_frame(
        path,
        """
        SELECT r.run_id, r.spec, r.status, r.started_at, r.finished_at, r.cells_planned,
               count(c.cell_hash) FILTER (WHERE c.status = 'done') AS done,
               count(c.cell_hash) FILTER (WHERE c.status = 'failed') AS failed,
               r.git_sha, r.device, r.pid
        FROM runs r LEFT JOIN cells c ON c.run_id = r.run_id
        GROUP BY ALL ORDER BY r.started_at DESC LIMIT 10""",
    )
    if len(runs):
        # A 'running' run whose process does not hold the writer lock was killed.
        writer_pid = holder.pid if holder else None
        runs.loc[(runs["status"] == "running") & (runs["pid"] != writer_pid), "status"] = "killed"
    return {
        "store": str(path),
        "exists": path.exists(),
        "writer": holder.description if holder else None,
        "specs": _records(specs),
        "runs": _records(runs),
    }


def _records(frame: Any) -> list[dict[str, Any]]:
    return json.loads(frame.to_json(orient="records", date_format="iso")) if len(frame) else []
