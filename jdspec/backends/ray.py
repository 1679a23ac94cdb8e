"""Run jobs as Ray tasks, one per compressed model, streaming each record back as it is made.

The `jd run` process stays the only writer: a task yields records through a Ray streaming
generator and never opens the database. A task loads its model and data from the references
its Job carries, so no weights or datasets travel through Ray's object store.

Ray is imported only here, and only when `jd run --backend ray` asks for it (the `ray` extra).
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from jdspec.errors import UserError
from jdspec.plan import Cell, Job
from jdspec.results import CellResult, JobsRunning, VariantResult, Waiting

Record = VariantResult | CellResult
# How long the driver waits for a record before telling the writer it is waiting (Waiting).
WAIT_SECONDS = 0.5


def run_jobs(
    work: list[tuple[Job, tuple[Cell, ...]]],
    on_event: Callable[[JobsRunning], None],
    address: str | None,
    gpus_per_job: float,
) -> Iterator[Record | Waiting]:
    """Every job's records, taken from whichever task makes one next, so each cell is stored as
    soon as it is done. A task that dies fails its cells that have not returned yet; `jd run
    --resume` retries them.

    Args:
        address: None starts a local Ray for this run (and stops it after); "auto" or
            "host:port" joins a running cluster, which is left running.
    """
    ray = _import_ray()  # both at the call, so a missing Ray or cluster fails before a run
    started_here = _connect(ray, address)
    return _relay(ray, work, on_event, gpus_per_job, started_here)


def _relay(
    ray: ModuleType,
    work: list[tuple[Job, tuple[Cell, ...]]],
    on_event: Callable[[JobsRunning], None],
    gpus_per_job: float,
    started_here: bool,
) -> Iterator[Record | Waiting]:
    """The records of `_stream`, then stop the Ray this run started, however the run ends."""
    try:
        yield from _stream(ray, work, on_event, gpus_per_job)
    finally:
        if started_here:
            ray.shutdown()


def job_records(job: Job, cells: tuple[Cell, ...]) -> Iterator[str | Record]:
    """The body of a job's Ray task: the node it runs on first, then execute_job's records."""
    import ray

    yield ray.util.get_node_ip_address()
    from jdspec.jobs import execute_job  # the job kind's runner imports torch, in the task

    yield from execute_job(job, cells)


@dataclass
class _Flight:
    """The driver's bookkeeping of one submitted job: where it runs, which of its cells have
    returned, and when its last record came (a dead task's unfinished cell started then)."""

    cells: tuple[Cell, ...]
    node: str | None = None
    returned: set[str] = field(default_factory=set)
    last_record_at: float = field(default_factory=time.time)


def _stream(
    ray: ModuleType,
    work: list[tuple[Job, tuple[Cell, ...]]],
    on_event: Callable[[JobsRunning], None],
    gpus_per_job: float,
) -> Iterator[Record | Waiting]:
    """Submit every job at once (Ray queues what does not fit) and relay records as they land;
    Waiting while none has landed for WAIT_SECONDS."""
    # No retries: a task that dies again and again (out of memory) would cost the run hours;
    # its cells are stored as failed instead, and --resume retries them when asked.
    task = ray.remote(num_returns="streaming", num_cpus=1, num_gpus=gpus_per_job, max_retries=0)(
        job_records
    )
    flights = {task.remote(job, cells): _Flight(cells) for job, cells in work}
    running: dict[str, int] = {}
    try:
        while flights:
            ready, _ = ray.wait(list(flights), num_returns=1, timeout=WAIT_SECONDS)
            if not ready:
                yield Waiting()
                continue
            [generator] = ready
            flight = flights[generator]
            item = _take(ray, generator)
            if item is None or isinstance(item, ray.exceptions.RayError):
                del flights[generator]
                if item is not None:
                    yield from _fail_unreturned(flight, item)
            elif isinstance(item, str):
                flight.node = item
            else:
                flight.last_record_at = time.time()
                if isinstance(item, CellResult):
                    flight.returned.add(item.cell_hash)
                yield item
            now_running = _jobs_per_node(flights.values())
            if now_running != running:
                running = now_running
                on_event(JobsRunning(running))
    finally:
        for generator in flights:  # the driver stopped early (Ctrl-C, a crash): free the workers
            ray.cancel(generator, force=True)


def _take(ray: ModuleType, generator: Any) -> str | Record | Exception | None:
    """The generator's next item: None once it has ended, the Ray error once its task died."""
    try:
        return ray.get(next(generator))
    except StopIteration:
        return None
    except ray.exceptions.RayError as error:
        return error


def _fail_unreturned(flight: _Flight, error: Exception) -> Iterator[CellResult]:
    """A failed record, carrying Ray's error, for each of the dead task's cells not yet back."""
    seconds = time.time() - flight.last_record_at
    for cell in flight.cells:
        if cell.cell_hash not in flight.returned:
            yield CellResult(
                cell.cell_hash, "failed", flight.last_record_at, seconds, error=str(error)
            )


def _jobs_per_node(flights: Iterable[_Flight]) -> dict[str, int]:
    """Jobs started on each node whose cells are not all back (its end may still be on the way)."""
    running = Counter(
        flight.node
        for flight in flights
        if flight.node and len(flight.returned) < len(flight.cells)
    )
    return dict(sorted(running.items()))


def _import_ray() -> ModuleType:
    """Ray, or a one-line UserError saying how to install it: it is an optional extra."""
    try:
        import ray
    except ImportError:
        raise UserError("--backend ray needs Ray: pip install 'jd[ray]'") from None
    return ray


def _connect(ray: ModuleType, address: str | None) -> bool:
    """Reuse a Ray this process already joined, join `address`, or start a local Ray sized to
    this machine; True when this run started Ray and so must stop it."""
    if ray.is_initialized():
        return False
    if address is not None and address.startswith("ray://"):
        # Ray Client cannot stream a task's results (num_returns="streaming").
        raise UserError(
            f"--address {address}: Ray Client (ray://) cannot stream results; run jd on a "
            "cluster node with --address auto, or give the cluster's host:port (GCS address)"
        )
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING}  # keep progress readable
    if address is None:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, **quiet)
        return True
    try:
        ray.init(address=address, **quiet)
    except ConnectionError as error:
        raise UserError(f"--address {address}: no Ray cluster there ({error})") from None
    return False
