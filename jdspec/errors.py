"""Errors a user can act on, kept apart from failures of the work itself.

A UserError is bad input or a refused command (a spec, a flag, a store path, a busy store): the
CLI prints it as one paragraph and exits with code 2, having written nothing. Anything a job
raises is not one of these: the worker stores it with its cell as failed, traceback and all,
and `jd run` exits 1 when any cell of the run failed.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input or a refused command, in one paragraph saying what was expected."""


class SpecError(UserError):
    """A problem in a spec file or a command's arguments, naming the file, line and field."""


class StoreError(UserError):
    """A store path jd cannot use: not a jd store, damaged, newer than this jd, or in use."""


class StoreBusy(UserError):
    """Another `jd run` holds the store; carries the holder's description."""


class JobError(Exception):
    """A check on a job's own work failed (held weights drifted, a checkpoint of another run):
    the cell is stored as failed with this message, and the run goes on."""
