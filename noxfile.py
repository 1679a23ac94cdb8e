"""nox sessions run in the current environment (torch is large): tests, lint, demo."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["lint", "tests"]


@nox.session
def tests(session: nox.Session) -> None:
    """The whole suite, integration tests included (python -m pytest); the fast loop is
    `nox -s tests -- -m "not integration"`."""
    session.run("python", "-m", "pytest", "-q", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.run("ruff", "check", "jdspec", "tests", "bench", "noxfile.py")


@nox.session
def demo(session: nox.Session) -> None:
    """Plan, run and report the offline demo study (specs/demo.yaml)."""
    for command in (["plan"], ["run", "--resume"], ["report"]):
        session.run("jd", *command, "specs/demo.yaml")
