"""A warm `jd`: imports torch, transformers and jdspec once, then forks one `jd` process per
command on stdin, so a test can kill many short runs without paying ~10 s of imports for each.

Protocol, one line each. stdin: a JSON list, `jd`'s argv then a log file, e.g.
`["run", "spec.yaml", "--store", "s.duckdb", "/tmp/attempt-3.log"]`; stdout: `started <pid>`
at once. Then stdin: `reap`; stdout: `ended <pid> <wait status>` once that process is gone.
Each child runs `jd`'s own entry point with that argv, its output going to the log file.
"""

from __future__ import annotations

import json
import os
import sys

import datasets  # noqa: F401  (ARC-Easy is read through it)
import torch  # noqa: F401
import transformers.models.llama.modeling_llama  # noqa: F401

import jdspec.backends.local  # noqa: F401
import jdspec.cli
import jdspec.data.benchmarks  # noqa: F401
import jdspec.eval.loglikelihood  # noqa: F401


def _thread_count() -> int:
    return len(os.listdir("/proc/self/task"))


def _child(argv: list[str], log: str) -> None:
    """Run `jd argv` in this forked process and exit with its code; never returns."""
    code = 1
    try:
        descriptor = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(descriptor, 1)
        os.dup2(descriptor, 2)
        jdspec.cli.app(argv, prog_name="jd")
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    finally:
        os._exit(code)


def main() -> None:
    # A fork copies only the calling thread: one that held a lock elsewhere would leave it
    # locked in the child forever, so the parent must have no other thread.
    print(f"ready threads={_thread_count()}", flush=True)
    while line := sys.stdin.readline():
        *argv, log = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(argv, log)
        print(f"started {pid}", flush=True)
        # Reap only when told: until then an ended child stays a zombie, so its pid cannot be
        # reused and a late SIGKILL from the test cannot hit another process.
        sys.stdin.readline()
        _, status = os.waitpid(pid, 0)
        print(f"ended {pid} {status}", flush=True)


if __name__ == "__main__":
    main()
