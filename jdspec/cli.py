"""The `jd` command: parse, call one library function, render. Errors exit with code 2."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from jdspec.errors import SpecError, UserError
from jdspec.progress import RunProgress

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Study what compression does to pretrained language models.",
)
console = Console()
errors = Console(stderr=True)

StoreOption = Annotated[
    Path, typer.Option("--store", envvar="JD_STORE", help="The DuckDB store (env JD_STORE).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
SpecArgument = Annotated[Path, typer.Argument(help="A study spec (YAML).")]
DEFAULT_STORE = Path("store/jd.duckdb")


def _guarded(action: Callable[[], None]) -> None:
    """Run a command; user errors become one paragraph on stderr and exit code 2."""
    try:
        action()
    except UserError as error:
        _fail(str(error))
    except OSError as error:  # the file system refused: a folder not creatable, a full disk
        where = f"cannot use {error.filename}: " if error.filename else ""
        _fail(f"{where}{error.strerror or error}")


def _fail(message: str) -> NoReturn:
    # Escaped: a message quotes the user's input, which may look like Rich markup ("[/x]").
    errors.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2) from None


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def _table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(_cell_text(row.get(column)) for column in columns))
    return table


def _cell_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


@app.command()
def plan(
    spec: SpecArgument,
    store: StoreOption = DEFAULT_STORE,
    as_json: JsonOption = False,
    explain: Annotated[
        bool, typer.Option(help="Say why each cell is new, done or failed.")
    ] = False,
) -> None:
    """What would run: cells new / done / failed, by compressed model.

    Example: jd plan specs/demo.yaml --explain
    """
    from jdspec.plan import count_statuses
    from jdspec.run import explain_cells, level_rows, plan_spec
    from jdspec.spec import load_spec

    def action() -> None:
        loaded = load_spec(spec)
        if explain:
            rows = explain_cells(loaded, store)
            if as_json:
                return _print_json(rows)
            columns = ["status", "model", "family", "strength", "level", "cell_hash", "reason"]
            console.print(_table(f"{loaded.name}: {len(rows)} cells", rows, columns))
            return None
        planned = plan_spec(loaded, store)
        counts = count_statuses(planned)
        jobs = [_job_row(job) for job in planned]
        levels = level_rows(loaded)
        if as_json:
            return _print_json(
                {
                    "spec": loaded.name,
                    "store": str(store),
                    "counts": counts,
                    "levels": levels,
                    "jobs": jobs,
                }
            )
        console.print(
            _table(
                f"{loaded.name}: {len(levels)} levels of {levels[0]['setting']}",
                levels,
                ["level", "kind", "difficulty", "difficulty from"],
            )
        )
        console.print(
            _table(
                f"{loaded.name}: {len(jobs)} compressed models",
                jobs,
                ["model", "family", "strength", "cells", "new", "done", "failed"],
            )
        )
        console.print(
            f"cells: {counts['new']} new, {counts['done']} done, "
            f"{counts['failed']} failed  (store {store})"
        )
        return None

    _guarded(action)


def _job_row(planned: Any) -> dict[str, Any]:
    job = planned.job
    return {
        "model": job.cells[0].model,
        "family": job.compressor.family(),
        "strength": job.compressor.strength(),
        "variant_hash": job.variant_hash,
        "cells": len(job.cells),
        **{s: planned.statuses.count(s) for s in ("new", "done", "failed")},
    }


@app.command()
def run(
    spec: SpecArgument,
    store: StoreOption = DEFAULT_STORE,
    resume: Annotated[bool, typer.Option(help="Also retry failed cells.")] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="Run at most N cells.")] = None,
    force: Annotated[
        bool,
        typer.Option(help="Also rerun done cells; their old results move to history tables."),
    ] = False,
    backend: Annotated[
        str, typer.Option(help="local (this process) or ray (Ray tasks; needs the ray extra).")
    ] = "local",
    address: Annotated[
        str | None, typer.Option(help='Ray cluster: "auto" or host:port; none: a local Ray.')
    ] = None,
    gpus_per_job: Annotated[
        float, typer.Option(min=0, help="GPUs each Ray job requests (one compressed model).")
    ] = 0.0,
    as_json: JsonOption = False,
) -> None:
    """Run every cell that is not done yet, storing each as it finishes. Exits 1 when a cell
    of this run failed, 2 on bad input.

    Examples: jd run specs/demo.yaml --resume;  jd run specs/demo.yaml --force --limit 3;
    jd run specs/setting5.yaml --backend ray --address auto --gpus-per-job 1
    """
    from jdspec.run import Backend, run_spec
    from jdspec.spec import load_spec

    def action() -> None:
        if backend not in ("local", "ray"):
            raise SpecError(f"--backend: expected local or ray, got {backend!r}")
        if backend == "local" and (address is not None or gpus_per_job):
            raise SpecError("--address and --gpus-per-job need --backend ray")
        chosen = Backend(backend, address, gpus_per_job)  # type: ignore[arg-type]
        loaded = load_spec(spec)
        with RunProgress(errors, enabled=not as_json) as progress:
            try:
                summary = run_spec(
                    loaded,
                    store,
                    retry_failed=resume,
                    limit=limit,
                    on_event=progress.update,
                    backend=chosen,
                    force=force,
                )
            except KeyboardInterrupt:
                errors.print(
                    f"interrupted: finished cells are stored; the cell in flight is "
                    f"lost. Continue with: jd run {escape(str(spec))} --resume"
                )
                raise typer.Exit(130) from None
        if as_json:
            _print_json(summary.__dict__)
        else:
            console.print(
                f"{summary.status}: {summary.done} done, {summary.failed} failed, "
                f"{summary.already_done} already stored, {summary.left} left, in "
                f"{summary.seconds:.1f} s" + (f" (run {summary.run_id})" if summary.run_id else "")
            )
        if summary.failed:  # a script or CI must be able to tell
            cells = "cell" if summary.failed == 1 else "cells"
            errors.print(
                f"{summary.failed} {cells} failed: see why with `jd plan {escape(str(spec))} "
                f"--explain` (or `jd status`); retry them with `jd run {escape(str(spec))} "
                "--resume`",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(1)
        return None

    _guarded(action)


@app.command()
def report(
    spec: Annotated[Path | None, typer.Argument(help="A study spec (YAML).")] = None,
    sql: Annotated[str | None, typer.Option(help="Read-only SQL over the store.")] = None,
    out: Annotated[Path | None, typer.Option(help="Folder (default reports/<spec>).")] = None,
    store: StoreOption = DEFAULT_STORE,
    as_json: JsonOption = False,
) -> None:
    """Statistics table and charts of a spec, or ad hoc read-only SQL over the store.

    Examples: jd report specs/demo.yaml;  jd report --sql "SELECT * FROM jd_results LIMIT 5"
    """

    def action() -> None:
        if sql is not None:
            return _report_sql(store, sql, as_json)
        if spec is None:
            raise SpecError("give a spec file, or --sql with a query")
        return _report_spec(spec, store, out, as_json)

    _guarded(action)


def _report_sql(store: Path, sql: str, as_json: bool) -> None:
    from jdspec.store import user_query

    frame = user_query(store, sql)
    if as_json:
        return _print_json(json.loads(frame.to_json(orient="records", date_format="iso")))
    console.print(_table(f"{len(frame)} rows", frame.to_dict("records"), list(frame.columns)))
    return None


def _report_spec(spec: Path, store: Path, out: Path | None, as_json: bool) -> None:
    from jdspec.report import write_report
    from jdspec.run import report_rows
    from jdspec.spec import load_spec

    loaded = load_spec(spec)
    rows = report_rows(loaded, store)
    if rows.empty:
        raise UserError(f"store {store} holds no done cell of {loaded.name}; run: jd run {spec}")
    written = write_report(loaded.name, rows, out or Path("reports") / loaded.name)
    if as_json:
        return _print_json(
            {
                "trends": json.loads(written.trends.to_json(orient="records")),
                "difficulty": json.loads(written.difficulty.to_json(orient="records")),
                "files": [str(path) for path in written.paths],
            }
        )
    for metric in _headline_metrics(loaded.reported_metrics()):
        for table in _level_tables(written, metric):
            console.print(table)
    trends = [_trend_text(row) for row in written.trends.to_dict("records")]
    console.print(
        _table(
            f"{loaded.name}: normalized drop against strength, per level",
            trends,
            ["model", "family", "metric", "level", "difficulty", "Spearman ρ", "slope [95% CI]"],
        )
    )
    across = [
        {**row, "Spearman ρ": row["spearman_rho"], "levels": row["level_count"]}
        for row in written.difficulty.to_dict("records")
    ]
    console.print(
        _table(
            "across levels: slope against difficulty (ρ > 0: harder levels lose more)",
            across,
            ["model", "family", "metric", "levels", "Spearman ρ"],
        )
    )
    console.print("written: " + ", ".join(str(path) for path in written.paths))
    return None


def _headline_metrics(metrics: tuple[str, ...]) -> list[str]:
    """The first reported metric, and the loss barrier when the spec measures one."""
    return [metrics[0], *(name for name in metrics if name == "barrier_loss")]


def _level_tables(written: Any, metric: str) -> list[Table]:
    """Scores (mean ± std over seeds) and mean normalized drops: a row per compressed model,
    a column per level, easy to hard."""
    scores = written.scores
    scores = scores.loc[(scores["metric"] == metric) & scores["step"].isna()]
    if scores.empty:
        return []
    levels = scores.sort_values(["difficulty", "level"])["level"].drop_duplicates().tolist()
    seeds = int(scores["seeds"].max())

    def text(row: Any) -> str:
        spread = "" if _missing(row["std"]) else f" ± {row['std']:.3f}"
        return f"{row['mean']:.3f}{spread}"

    tables = []
    score_rows = _pivot(scores.assign(text=scores.apply(text, axis=1)), levels, "text")
    title = f"{metric}: mean ± std over {seeds} seeds" if seeds > 1 else metric
    tables.append(_table(title, score_rows, ["family", "strength", *levels]))
    if metric.startswith("barrier_"):  # 0 for the dense model by construction: no ratio to it
        return tables
    drops = written.drops.loc[written.drops["metric"] == metric]
    drops = drops.loc[(drops["strength_name"] != "sparsity") | (drops["strength"] > 0)]
    if not drops.empty:
        means = drops.groupby(["family", "strength", "level"], as_index=False)["drop"].mean()
        means["text"] = means["drop"].map(lambda value: f"{value:.1%}")
        drop_title = f"normalized drop of {metric}, (dense - compressed) / dense"
        columns = ["family", "strength", *levels]
        tables.append(_table(drop_title, _pivot(means, levels, "text"), columns))
    return tables


def _pivot(frame: Any, levels: list[str], column: str) -> list[dict[str, Any]]:
    rows: dict[tuple, dict[str, Any]] = {}
    for record in frame.sort_values(["family", "strength"]).to_dict("records"):
        key = (record["family"], record["strength"])
        row = rows.setdefault(key, {"family": key[0], "strength": key[1]})
        row[record["level"]] = record[column]
    return [{**row, **{level: row.get(level, "") for level in levels}} for row in rows.values()]


def _missing(value: Any) -> bool:
    """NaN or None: a single seed has no standard deviation."""
    return value is None or (isinstance(value, float) and value != value)


def _trend_text(row: dict[str, Any]) -> dict[str, Any]:
    interval = f"{row['slope']:.3f} [{row['slope_low']:.3f}, {row['slope_high']:.3f}]"
    return {**row, "Spearman ρ": row["spearman_rho"], "slope [95% CI]": interval}


@app.command()
def compress(
    model: Annotated[str, typer.Argument(help="Local folder, hub id, or offline:PKG==VER:FILE.")],
    method: Annotated[str, typer.Option(help="A registered method: magnitude, wanda, ...")],
    out: Annotated[Path, typer.Option(help="New folder for the compressed model.")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="A parameter, key=value (YAML value; dotted keys nest)."),
    ] = None,
    revision: Annotated[str, typer.Option(help="Hub revision.")] = "main",
    dtype: Annotated[str, typer.Option(help="float32, bfloat16 or float16.")] = "float32",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1.")] = "auto",
    as_json: JsonOption = False,
) -> None:
    """Compress one model and save it as a transformers folder with a JSON record.

    Example: jd compress ./my-model --method magnitude --set mask_structure=2:4 --out pruned/
    """
    from jdspec.export import RECORD_FILE, export_compressed, parse_model_argument
    from jdspec.spec import compressor_from_options

    def action() -> None:
        params = compressor_from_options(method, _parse_settings(set_ or []))
        if dtype not in ("float32", "bfloat16", "float16"):
            raise SpecError(f"--dtype: expected float32, bfloat16 or float16, got {dtype!r}")
        record = export_compressed(
            parse_model_argument(model, revision), params, out, dtype, device
        )
        if as_json:
            return _print_json(
                {"out": str(out), "sparsity": record.sparsity, "seconds": record.seconds}
            )
        console.print(
            f"{method}: sparsity {record.sparsity:.4f} over {len(record.matrices)} "
            f"matrices in {record.seconds:.1f} s; written to {out} ({RECORD_FILE})"
        )
        return None

    _guarded(action)


def _parse_settings(pairs: list[str]) -> dict[str, Any]:
    """`a.b=1` -> {"a": {"b": 1}}; values are read as YAML, so 0.5 is a number, 2:4 a string."""
    import yaml

    settings: dict[str, Any] = {}
    for pair in pairs:
        key, separator, text = pair.partition("=")
        if not separator or not key:
            raise SpecError(f"--set {pair!r}: expected key=value")
        value = yaml.safe_load(text)
        value = text if isinstance(value, int) and ":" in text else value  # YAML reads 2:4 as 124
        node = settings
        *parents, leaf = key.split(".")
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return settings


@app.command()
def status(store: StoreOption = DEFAULT_STORE, as_json: JsonOption = False) -> None:
    """What the store holds: specs, cells by status, recent runs, a run in progress.

    Example: jd status --store store/jd.duckdb
    """
    from jdspec.status import store_status

    def action() -> None:
        summary = store_status(store)
        if as_json:
            return _print_json(summary)
        console.print(f"store {store}: " + (summary["writer"] or "no run in progress"))
        console.print(_table("specs", summary["specs"], ["spec", "done", "failed", "cells"]))
        console.print(
            _table(
                "recent runs",
                summary["runs"],
                ["run_id", "spec", "status", "started_at", "cells_planned", "done", "failed"],
            )
        )
        return None

    _guarded(action)


if __name__ == "__main__":
    app()
