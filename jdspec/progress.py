"""What `jd run` shows while it runs: a bar of cells (count, ETA; on Ray, jobs per node), a bar
of the examples of the cell in flight, and a line per finished cell with its final metrics.
The CLI's; the run reports events through a callback and never writes to the terminal."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from jdspec.results import JobsRunning


class RunProgress:
    """Rich bars: cells overall (count, ETA) and examples of the cell in flight."""

    def __init__(self, console: Console, enabled: bool) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not enabled,
            transient=False,
        )
        self.cells_task: Any = None
        self.examples_task: Any = None

    def __enter__(self) -> RunProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def update(self, event: Any) -> None:
        """Show one event of the run (jdspec.run.RunEvent)."""
        from jdspec.run import CellFinished, RunStarted

        if isinstance(event, JobsRunning):
            self.progress.update(self.cells_task, description=cells_description(event.per_node))
            self.progress.update(self.examples_task, visible=False)  # not reported across Ray
        elif isinstance(event, RunStarted):
            _quiet_transformers()
            self.cells_task = self.progress.add_task("cells", total=event.cell_count)
            self.examples_task = self.progress.add_task("examples", total=None)
        elif isinstance(event, CellFinished):
            self.progress.advance(self.cells_task)
            mark = "" if event.result.status == "done" else " [red]failed[/]"
            self.progress.console.print(
                f"{event.cell.model} {event.cell.family} "
                f"{event.cell.compressor.strength():g} {event.cell.level.label}: "
                + ", ".join(
                    f"{m.name} {m.value:.3f}" for m in event.result.metrics if m.step is None
                )
                + mark
            )
        else:
            self.progress.update(self.examples_task, completed=event.done, total=event.total)


def cells_description(per_node: dict[str, int]) -> str:
    """The cells bar's label; on Ray it says how many jobs each node runs now."""
    if not per_node:
        return "cells"
    nodes = ", ".join(
        f"node {node}: {count} job{'' if count == 1 else 's'}" for node, count in per_node.items()
    )
    return f"cells ({nodes})"


def _quiet_transformers() -> None:
    """transformers' own loading bars and notices would interleave with jd's progress."""
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()
