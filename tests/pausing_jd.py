"""`jd` that stops once it has stored N cells and waits for a signal, so a test can interrupt
or kill a run at a known point instead of racing the run's progress against a poll.

Usage: python tests/pausing_jd.py CELLS MARKER ARGV...: runs `jd ARGV...`; when the next cell
is ready to be stored after CELLS cells were, it writes the file MARKER and waits until a
signal arrives. That cell is the one in flight: SIGINT (a KeyboardInterrupt there) or SIGKILL
must lose it and nothing else.

The hook replaces `jdspec.store.write_cell`, the name jdspec/run.py calls (`store.write_cell`,
re-exported by the store package from jdspec/store/writes.py).
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import jdspec.cli
from jdspec import store


def main() -> None:
    cells, marker, *argv = sys.argv[1:]
    # A shell starts background jobs with SIGINT ignored, and children inherit that: restore
    # what a user's terminal gives `jd`, so Ctrl-C raises KeyboardInterrupt however the test
    # suite itself was started.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    write_cell = store.write_cell
    stored = 0

    def wait_then_write(*args: Any, **kwargs: Any) -> None:
        nonlocal stored
        if stored == int(cells):
            Path(marker).write_text(f"{stored} cells stored\n")
            while True:
                signal.pause()
        write_cell(*args, **kwargs)
        stored += 1

    store.write_cell = wait_then_write
    jdspec.cli.app(argv, prog_name="jd")


if __name__ == "__main__":
    main()
